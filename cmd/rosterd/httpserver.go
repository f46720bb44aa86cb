package main

import (
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// newHTTPServer returns the HTTP server of the API with the [http] table's
// timeouts. An idle keep-alive connection is closed after idle_timeout, a
// request whose headers have not arrived after read_header_timeout, one
// whose body has not after read_timeout (the plan route renews it per
// read, see httpapi.Config), and a response not written within
// write_timeout of the request's headers.
func newHTTPServer(c HTTPConfig, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout.D(),
		ReadTimeout:       c.ReadTimeout.D(),
		WriteTimeout:      c.WriteTimeout.D(),
		IdleTimeout:       c.IdleTimeout.D(),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// limitListener accepts at most n connections at a time: Accept waits
// for one of them to close first, and the connections beyond wait in the
// kernel's backlog. It is netutil.LimitListener's design (golang.org/x/net,
// not a dependency), with metrics.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	open      prometheus.Gauge
	waits     prometheus.Counter
}

// newLimitListener wraps ln; reg (nil: none) receives
// rosterd_http_connections and rosterd_http_connection_waits_total.
func newLimitListener(ln net.Listener, n int, reg prometheus.Registerer) *limitListener {
	l := &limitListener{
		Listener: ln,
		sem:      make(chan struct{}, n),
		done:     make(chan struct{}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rosterd_http_connections", Help: "Open HTTP connections.",
		}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rosterd_http_connection_waits_total", Help: "Accepts that waited for a connection to close (http.max_connections reached).",
		}),
	}
	if reg != nil {
		reg.MustRegister(l.open, l.waits)
	}
	return l
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		l.waits.Inc()
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	l.open.Inc()
	return &limitConn{Conn: c, l: l}, nil
}

// Close closes the listener and ends an Accept waiting for a slot.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back on its first Close.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Dec()
		<-c.l.sem
	})
	return err
}
