package testkit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Response is an HTTP answer read in full.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Fetch sends one request with client and reads the whole answer; safe on any goroutine. A
// "Host" in header becomes the request's Host.
func Fetch(client *http.Client, method, url, body string, header http.Header) (Response, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return Response{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if host := header.Get("Host"); host != "" {
		req.Host = host // the client sends req.Host, never a Host in req.Header
	}
	res, err := client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{res.StatusCode, res.Header, string(b)}, nil
}

// Do is Fetch on the test's goroutine.
func Do(t testing.TB, client *http.Client, method, url, body string, header http.Header) Response {
	t.Helper()
	res, err := Fetch(client, method, url, body, header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return res
}

// Scrape returns g's metrics in the Prometheus text format.
func Scrape(t testing.TB, g prometheus.Gatherer) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(g, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}
