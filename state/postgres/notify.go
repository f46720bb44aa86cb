package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notifications tell every instance of a fleet what another committed,
// so that it need not poll for it (SPEC §11). The writing transaction
// sends them (pg_notify), and PostgreSQL delivers them when it commits,
// in commit order, to every connection listening; a transaction that
// rolls back sends nothing. A Listener holds one connection per instance
// and calls the handlers registered for each channel.
//
// Notifications sent while a Listener is not connected are lost: after
// each connection the Listener calls every handler with the payload ""
// (anything may have changed), and it does so every Poll as well, the
// polling fallback that holds even while it cannot connect.
const (
	// ChannelBatches is notified when an organization's batch is recorded
	// or changes (FormBatch, RecordArchived, FinishBatch, ...); the
	// payload is the organization's name.
	ChannelBatches = "rosterd_batches"
	// ChannelEvents is notified when an organization's events commit; the
	// payload is the organization's name.
	ChannelEvents = "rosterd_events"
)

// Default intervals of a Listener.
const (
	DefaultPoll = 30 * time.Second
	// minReconnect is the first wait before connecting again; it doubles
	// up to maxReconnect.
	minReconnect = 250 * time.Millisecond
	maxReconnect = 30 * time.Second
)

// ListenerConfig configures a Listener. A zero field means the default.
type ListenerConfig struct {
	// Poll is how often the handlers are called with "" when no
	// notification came: the fallback for notifications lost while not
	// listening. Default DefaultPoll.
	Poll time.Duration
	// Logger receives the losses of the listening connection; nil
	// discards.
	Logger *slog.Logger
}

// Listener listens for the store's notifications on a connection of its
// own and calls the handlers of each channel. Make one per instance,
// register its handlers with Handle, then Run it.
type Listener struct {
	db     *DB
	poll   time.Duration
	logger *slog.Logger

	mu       sync.Mutex
	handlers map[string][]func(payload string)
	running  bool
}

// NewListener returns a Listener of db's notifications.
func (db *DB) NewListener(cfg ListenerConfig) *Listener {
	l := &Listener{db: db, poll: cfg.Poll, logger: cfg.Logger, handlers: map[string][]func(string){}}
	if l.poll <= 0 {
		l.poll = DefaultPoll
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	return l
}

// Handle registers fn for channel (ChannelBatches, ChannelEvents). fn is
// called from Run's goroutine, one call at a time, with a notification's
// payload or with "" (anything may have changed); it must not block.
// Handle is for before Run: a channel registered later is not listened
// to.
func (l *Listener) Handle(channel string, fn func(payload string)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handlers[channel] = append(l.handlers[channel], fn)
}

// Run listens until ctx ends, then returns nil. When the connection is
// lost it connects again (after 250 ms, doubling up to 30 s), polling
// meanwhile.
func (l *Listener) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.running {
		l.mu.Unlock()
		return errors.New("listener: already running")
	}
	l.running = true
	channels := make([]string, 0, len(l.handlers))
	for c := range l.handlers {
		channels = append(channels, c)
	}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
	}()

	wait := minReconnect
	for {
		err := l.listen(ctx, channels, func() { wait = minReconnect })
		if ctx.Err() != nil {
			return nil
		}
		l.logger.Warn("store notifications lost, polling until listening again", "err", err, "retry_in", wait)
		if !l.sleep(ctx, wait) {
			return nil
		}
		wait = min(2*wait, maxReconnect)
	}
}

// listen connects, listens to channels, calls connected and every
// handler with "", then dispatches notifications until ctx ends or the
// connection fails.
func (l *Listener) listen(ctx context.Context, channels []string, connected func()) error {
	cfg := l.db.pool.Config().ConnConfig.Copy()
	// Named for an operator's pg_stat_activity.
	cfg.RuntimeParams["application_name"] = "rosterd listener " + l.db.instance
	cctx, cancel := context.WithTimeout(ctx, l.db.timeout)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(ctx)
	}()
	for _, c := range channels {
		cctx, cancel := context.WithTimeout(ctx, l.db.timeout)
		_, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{c}.Sanitize())
		cancel()
		if err != nil {
			return fmt.Errorf("listen %s: %w", c, err)
		}
	}
	connected()
	l.dispatchAll()
	for {
		wctx, cancel := context.WithTimeout(ctx, l.poll)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			l.dispatch(n.Channel, n.Payload)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			l.dispatchAll() // the poll
		default:
			return err
		}
	}
}

// sleep waits d, polling meanwhile; false when ctx ended.
func (l *Listener) sleep(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		t := time.NewTimer(min(left, l.poll))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		if left >= l.poll {
			l.dispatchAll()
		}
	}
}

func (l *Listener) dispatch(channel, payload string) {
	l.mu.Lock()
	fns := l.handlers[channel]
	l.mu.Unlock()
	for _, fn := range fns {
		fn(payload)
	}
}

func (l *Listener) dispatchAll() {
	l.mu.Lock()
	channels := make([]string, 0, len(l.handlers))
	for c := range l.handlers {
		channels = append(channels, c)
	}
	l.mu.Unlock()
	for _, c := range channels {
		l.dispatch(c, "")
	}
}

// notify sends a notification on channel from tx, delivered when tx
// commits. PostgreSQL folds the same notification sent twice in one
// transaction into one.
func notify(ctx context.Context, tx pgx.Tx, channel, payload string) error {
	_, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", channel, payload)
	return err
}
