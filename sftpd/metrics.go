package sftpd

import "github.com/prometheus/client_golang/prometheus"

// metrics are the sftpd Prometheus collectors. Labels are bounded: reason
// and result take a handful of fixed values.
type metrics struct {
	sessions      prometheus.Gauge
	sessionsTotal prometheus.Counter
	authFailures  prometheus.Counter
	bans          prometheus.Counter
	refusals      *prometheus.CounterVec
	uploads       *prometheus.CounterVec
	uploadBytes   prometheus.Counter

	unauthenticated prometheus.Gauge
	acceptErrors    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rosterd_sftp_sessions", Help: "Open SFTP sessions.",
		}),
		sessionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rosterd_sftp_sessions_total", Help: "SFTP sessions opened.",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rosterd_sftp_auth_failures_total", Help: "Rejected SSH authentication attempts.",
		}),
		bans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rosterd_sftp_bans_total", Help: "Addresses banned after repeated authentication failures.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosterd_sftp_refusals_total", Help: "Refused connections and requests by reason (max_startups, max_startups_per_address and login_grace_time are connections dropped before authenticating).",
		}, []string{"reason"}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosterd_sftp_uploads_total", Help: "Uploads by result (ok, aborted, too_large, no_space, failed).",
		}, []string{"result"}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rosterd_sftp_upload_bytes_total", Help: "Bytes of completed uploads.",
		}),
		unauthenticated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rosterd_sftp_unauthenticated_connections", Help: "Connections that have not authenticated yet.",
		}),
		acceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rosterd_sftp_accept_errors_total", Help: "Failed accepts on the SFTP listener (EMFILE and the like), each retried.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.sessionsTotal, m.authFailures, m.bans, m.refusals, m.uploads, m.uploadBytes, m.unauthenticated, m.acceptErrors)
	}
	return m
}
