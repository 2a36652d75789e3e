package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"
)

// addCAFlag adds --ca, the CA certificate a command trusts for a node's
// HTTPS API (nodes started with --api-tls serve it under the cluster CA).
func addCAFlag(fl *pflag.FlagSet, ca *string) {
	fl.StringVar(ca, "ca", "", "CA certificate `FILE` (PEM, e.g. the cluster CA's ca.crt) to trust for an https --addr (a node started with --api-tls); default the system's roots")
}

// nodeHTTPClient is the HTTP client a command calls a node's API with:
// timeout 0 means none, caFile (when not empty) the only roots trusted for
// HTTPS. A file without a PEM certificate is a usage error.
func nodeHTTPClient(caFile string, timeout time.Duration) (*http.Client, error) {
	hc := &http.Client{Timeout: timeout}
	if caFile == "" {
		return hc, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, usagef("--ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usagef("--ca %s holds no PEM certificate", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	hc.Transport = tr
	return hc, nil
}
