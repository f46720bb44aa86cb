//go:build race

package ingest

// raceEnabled is true under the race detector, whose slowdown the
// longest tests scale down for.
const raceEnabled = true
