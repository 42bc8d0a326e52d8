package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/siobridge/siobridge/internal/config"
	"github.com/siobridge/siobridge/internal/testkit"
)

func TestHealthcheck(t *testing.T) {
	const token = "health-token"
	var status atomic.Int32 // what /healthz answers
	status.Store(http.StatusOK)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/healthz" || r.Method != http.MethodGet:
			http.Error(w, "no route", http.StatusNotFound)
		case r.Header.Get("Authorization") != "" && r.Header.Get("Authorization") != "Bearer "+token:
			http.Error(w, "bad token", http.StatusUnauthorized)
		default:
			w.WriteHeader(int(status.Load()))
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		}
	}))
	defer api.Close()
	listen := strings.TrimPrefix(api.URL, "http://")
	_, port, _ := net.SplitHostPort(listen)

	ctx := context.Background()
	if err := healthcheck(ctx, config.APIConfig{Listen: listen}); err != nil {
		t.Errorf("without a token: %v", err)
	}
	if err := healthcheck(ctx, config.APIConfig{Listen: listen, Token: token}); err != nil {
		t.Errorf("with the token: %v", err)
	}
	if err := healthcheck(ctx, config.APIConfig{Listen: ":" + port}); err != nil {
		t.Errorf("a wildcard listen address, reached on loopback: %v", err)
	}
	if err := healthcheck(ctx, config.APIConfig{Listen: listen, Token: "another"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("with another token: %v, want the 401 reported", err)
	}
	status.Store(http.StatusServiceUnavailable)
	if err := healthcheck(ctx, config.APIConfig{Listen: listen}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("answered 503: %v, want it reported", err)
	}
	api.Close()
	if err := healthcheck(ctx, config.APIConfig{Listen: listen}); err == nil {
		t.Error("nothing listening: no error")
	}
	if err := healthcheck(ctx, config.APIConfig{Listen: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "port 0") {
		t.Errorf("port 0: %v, want it named", err)
	}
}

func TestAPIDialAddr(t *testing.T) {
	for listen, want := range map[string]string{
		":7897":          "127.0.0.1:7897",
		"0.0.0.0:7897":   "127.0.0.1:7897",
		"[::]:7897":      "[::1]:7897",
		"127.0.0.1:7897": "127.0.0.1:7897",
		"10.1.2.3:7897":  "10.1.2.3:7897",
		"localhost:7897": "localhost:7897",
	} {
		if got, err := apiDialAddr(listen); err != nil || got != want {
			t.Errorf("apiDialAddr(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
}

// TestHealthcheckBinary runs `siobridge -healthcheck` as the image's HEALTHCHECK does, against
// a running siobridge and against a port where none listens, and checks its exit status.
func TestHealthcheckBinary(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	b := startBridge(t, nil, "SIOBRIDGE_API_TOKEN="+token)
	healthcheck := func(t *testing.T, apiListen string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
		defer cancel()
		cmd := exec.CommandContext(ctx, siobridge.Path(t), "-healthcheck")
		cmd.Env = testkit.Env("SIOBRIDGE_CONFIG=", "SIOBRIDGE_API_LISTEN="+apiListen, "SIOBRIDGE_API_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("siobridge -healthcheck: %v", err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := healthcheck(t, b.API); code != 0 {
		t.Errorf("against a serving siobridge: exit status %d, want 0; output:\n%s", code, out)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if code, out := healthcheck(t, closed); code != 1 || !strings.HasPrefix(out, "siobridge: healthcheck: ") {
		t.Errorf("nothing listening: exit status %d, output %q; want 1 and the reason", code, out)
	}
}
