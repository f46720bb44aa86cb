package main

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fileHTTPCert is the certificate the daemon serves HTTPS with, written
// beside http_addr when tls_cert is set.
const fileHTTPCert = "http_cert.pem"

// httpClient returns the base URL and client for the daemon at addr:
// "host:port" is plain HTTP; "https://host:port" (what a daemon with
// tls_cert writes) is HTTPS, trusting exactly the certificate the daemon
// wrote into the data directory (it may be issued for a public name, not
// the loopback address), or the system's roots when there is none.
func httpClient(data, addr string) (string, *http.Client, error) {
	c := &http.Client{Timeout: 5 * time.Minute}
	if !strings.HasPrefix(addr, "https://") {
		return "http://" + strings.TrimPrefix(addr, "http://"), c, nil
	}
	raw, err := os.ReadFile(filepath.Join(data, fileHTTPCert))
	if errors.Is(err, os.ErrNotExist) {
		return addr, c, nil
	}
	if err != nil {
		return "", nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return "", nil, errors.New(fileHTTPCert + ": no certificate")
	}
	pinned := block.Bytes
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The name check is replaced by the comparison with the pinned
		// certificate below.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pinned) {
				return errors.New("the daemon's certificate is not the one in " + fileHTTPCert)
			}
			return nil
		},
	}}
	return addr, c, nil
}
