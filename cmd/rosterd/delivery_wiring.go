package main

import (
	"fmt"
	"strings"

	"github.com/rosterd/rosterd/ingest/webhook"
)

// Webhook delivery wiring (written by the delivery engineer; the lead may
// fold it into serve.go): the [[webhook]] tables and --webhook-url become
// webhook.Endpoints, [delivery] and [retention] the Deliverer's Config.

// webhookEndpoints turns the configured webhooks into endpoints; an error
// names the key.
func webhookEndpoints(cfg Config) ([]webhook.Endpoint, error) {
	eps := make([]webhook.Endpoint, 0, len(cfg.Webhooks))
	for i, w := range cfg.Webhooks {
		s, err := webhook.ParseSecret(w.Secret)
		if err != nil {
			return nil, fmt.Errorf("webhook[%d].secret: %w", i, err)
		}
		eps = append(eps, webhook.Endpoint{
			ID:            w.ID,
			URL:           w.URL,
			Secret:        s,
			Organizations: w.Organizations,
			WorkOS:        strings.EqualFold(w.Signature, "workos"),
		})
	}
	return eps, nil
}

// deliveryConfig builds the Deliverer's Config from the configuration.
func deliveryConfig(cfg Config, d *daemonState) (webhook.Config, error) {
	eps, err := webhookEndpoints(cfg)
	if err != nil {
		return webhook.Config{}, err
	}
	wc := webhook.Config{
		DB:         d.db,
		Endpoints:  eps,
		Timeout:    cfg.Delivery.Timeout.D(),
		Retention:  cfg.Retention.Events.D(),
		Logger:     d.log,
		Registerer: d.reg,
	}
	for _, s := range cfg.Delivery.Schedule {
		wc.Schedule = append(wc.Schedule, s.D())
	}
	return wc, nil
}

// newDeliverer builds the Deliverer from the configuration.
func newDeliverer(cfg Config, d *daemonState) (*webhook.Deliverer, error) {
	wc, err := deliveryConfig(cfg, d)
	if err != nil {
		return nil, err
	}
	return webhook.New(wc)
}

// reloadDelivery applies the reloaded endpoints, timeout, schedule and
// retention (SIGHUP); nothing of it needs a restart. A bad endpoint keeps
// the running ones.
func (d *daemonState) reloadDelivery(cfg Config) {
	wc, err := deliveryConfig(cfg, d)
	if err == nil {
		err = d.deliverer.Reconfigure(wc)
	}
	if err != nil {
		d.log.Error("reload: webhook settings unchanged", "err", err)
	}
}
