package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/siobridge/siobridge/internal/config"
)

// healthcheckTimeout bounds siobridge -healthcheck: connecting, and the answer of /healthz,
// which a serving siobridge gives at once.
const healthcheckTimeout = 5 * time.Second

// healthcheck asks the API that api configures for GET /healthz, with the bearer token when
// one is set, and returns nil when it answers 200. It is the image's HEALTHCHECK: the image
// has no curl, and this reads the address and the token from the same configuration as the
// siobridge it checks.
func healthcheck(ctx context.Context, api config.APIConfig) error {
	addr, err := apiDialAddr(api.Listen)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	url := "http://" + addr + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	if api.Token != "" {
		req.Header.Set("Authorization", "Bearer "+api.Token)
	}
	// The API is local: no proxy from the environment, and no connection kept.
	transport := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s answered %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// apiDialAddr returns the address at which a local client reaches an API listening on
// listen: a wildcard host (":7897", "0.0.0.0", "::") is reached on loopback.
func apiDialAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("api.listen %q: %w", listen, err)
	}
	if port == "0" {
		return "", fmt.Errorf("api.listen %q has port 0, a free port chosen at start: give the API a port of its own", listen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
