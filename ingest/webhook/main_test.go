package webhook

import (
	"os"
	"testing"

	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

// TestMain stops the PostgreSQL test server the fleet tests start.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
