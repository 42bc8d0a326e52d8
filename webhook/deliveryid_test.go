package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/siobridge/siobridge/internal/spool"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

// hookRequest is a webhook as the app received it.
type hookRequest struct {
	header http.Header
	body   []byte
}

// checkSignedID checks that the body's "id" is the X-Siobridge-Delivery header, that the
// signature verifies, and that it would not verify the same body under another id: a
// captured webhook cannot be replayed as a new delivery. It returns the id.
func checkSignedID(t *testing.T, secret string, h hookRequest) string {
	t.Helper()
	var p struct {
		ID   string `json:"id"`
		Type Kind   `json:"type"`
	}
	if err := json.Unmarshal(h.body, &p); err != nil {
		t.Fatalf("body %s: %v", h.body, err)
	}
	id := h.header.Get(HeaderDelivery)
	if id == "" || p.ID != id {
		t.Fatalf("%s webhook: body id %q, %s %q; want the same id in both:\n%s", p.Type, p.ID, HeaderDelivery, id, h.body)
	}
	sig := h.header.Get(HeaderSignature)
	if err := Verify(secret, sig, h.body, time.Now(), 5*time.Minute); err != nil {
		t.Fatalf("%s webhook: %v", p.Type, err)
	}
	forged := bytes.Replace(h.body, []byte(`"id":"`+id+`"`), []byte(`"id":"`+rand.Text()+`"`), 1)
	if bytes.Equal(forged, h.body) {
		t.Fatalf("%s webhook: the body does not hold \"id\":%q as written: %s", p.Type, id, h.body)
	}
	if err := Verify(secret, sig, forged, time.Now(), 5*time.Minute); err == nil {
		t.Fatalf("%s webhook: the signature also verifies the body with another id", p.Type)
	}
	return id
}

// TestBodyCarriesDeliveryID: every webhook's body carries its delivery id, under the
// signature.
func TestBodyCarriesDeliveryID(t *testing.T) {
	const secret = "s3cret"
	hooks := make(chan hookRequest, 8)
	app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hooks <- hookRequest{r.Header.Clone(), body}
	})
	d := newDeliverer(t, DelivererOptions{URL: app.URL, Secret: secret})
	srv := socketio.NewServer(socketio.Options{})
	NewBridge(BridgeOptions{Server: srv, Deliverer: d, Kinds: []Kind{KindConnect, KindEvent, KindDisconnect}})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	c := socketiotest.Dial(t, ts.URL, "")
	c.Connect("/", "")
	c.Write(`42["chat","hi",{"n":1}]`)
	c.Write(`42["chat","again"]`)
	c.Conn.Close()

	seen := map[string]Kind{}
	for _, kind := range []Kind{KindConnect, KindEvent, KindEvent, KindDisconnect} {
		h := receive(t, hooks, string(kind)+" webhook")
		if got := Kind(h.header.Get(HeaderType)); got != kind {
			t.Fatalf("got a %s webhook, want %s", got, kind)
		}
		id := checkSignedID(t, secret, h)
		if k, ok := seen[id]; ok {
			t.Fatalf("the %s webhook has the id of a %s webhook: %s", kind, k, id)
		}
		seen[id] = kind
	}
}

// TestSpoolReplayKeepsBodyID: webhooks kept in the spool when the app was down are delivered
// after a restart with the id they were given, in the body and the header alike.
func TestSpoolReplayKeepsBodyID(t *testing.T) {
	const secret = "s3cret"
	dir := t.TempDir()
	var mu sync.Mutex
	first := map[string][]byte{} // the body of each delivery id the app saw, while down
	arrived := make(chan struct{}, 2)
	down := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get(HeaderDelivery)
		mu.Lock()
		_, again := first[id]
		if !again {
			first[id] = body
		}
		mu.Unlock()
		if !again {
			arrived <- struct{}{}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	quiet := slog.New(slog.DiscardHandler)
	s := openSpool(t, spool.Options{Dir: dir, Logger: quiet})
	d := NewDeliverer(DelivererOptions{URL: down.URL, Secret: secret, Spool: s, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	srv := socketio.NewServer(socketio.Options{})
	NewBridge(BridgeOptions{Server: srv, Deliverer: d, Kinds: []Kind{KindEvent}, Logger: quiet})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	// Two sockets, so that both events are attempted (one socket's wait behind its first).
	for i := range 2 {
		c := socketiotest.Dial(t, ts.URL, "")
		c.Connect("/", "")
		c.Write(fmt.Sprintf(`42["e",%d]`, i+1))
	}
	receive(t, arrived, "the first event at the app")
	receive(t, arrived, "the second event at the app")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	d.Close(ctx)
	if n := d.Kept(); n != 2 {
		t.Fatalf("Kept = %d, want the 2 events", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	hooks := make(chan hookRequest, 2)
	up := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hooks <- hookRequest{r.Header.Clone(), body}
	})
	newDeliverer(t, DelivererOptions{URL: up.URL, Secret: secret, Spool: openSpool(t, spool.Options{Dir: dir, Logger: quiet})})
	for range 2 {
		h := receive(t, hooks, "a replayed event")
		id := checkSignedID(t, secret, h)
		mu.Lock()
		body, ok := first[id]
		mu.Unlock()
		if !ok || !bytes.Equal(body, h.body) {
			t.Fatalf("replayed %s %s, want an id and body the app saw before the restart", id, h.body)
		}
	}
}

// TestSpoolReplayAddsBodyIDToOldRecords: a webhook spooled by a siobridge that did not write
// the delivery id in the body is replayed with it, under the signature, so that an app that
// reads the id from the body (and refuses a body without one) loses nothing on an upgrade.
func TestSpoolReplayAddsBodyIDToOldRecords(t *testing.T) {
	const secret = "s3cret"
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	attempted := make(chan struct{}, 4)
	down := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case attempted <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	s := openSpool(t, spool.Options{Dir: dir, Logger: quiet})
	d := NewDeliverer(DelivererOptions{URL: down.URL, Secret: secret, Spool: s, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	old := []*Delivery{
		{ID: "OLDID1", Kind: KindEvent, Body: []byte(`{"type":"event","namespace":"/","event":"e","args":[1]}`)},
		{ID: "OLDID2", Kind: KindDisconnect, Body: []byte(`{}`)},
	}
	for i, dl := range old {
		if err := d.Enqueue(fmt.Sprintf("k%d", i), dl, func(Result) {}); err != nil {
			t.Fatal(err)
		}
	}
	receive(t, attempted, "an attempt at the app")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	d.Close(ctx)
	if n := d.Kept(); n != 2 {
		t.Fatalf("Kept = %d, want 2", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	hooks := make(chan hookRequest, 2)
	up := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hooks <- hookRequest{r.Header.Clone(), body}
	})
	newDeliverer(t, DelivererOptions{URL: up.URL, Secret: secret, Spool: openSpool(t, spool.Options{Dir: dir, Logger: quiet})})
	want := map[string]string{
		"OLDID1": `{"id":"OLDID1","type":"event","namespace":"/","event":"e","args":[1]}`,
		"OLDID2": `{"id":"OLDID2"}`,
	}
	for range 2 {
		h := receive(t, hooks, "a replayed webhook")
		id := h.header.Get(HeaderDelivery)
		if string(h.body) != want[id] {
			t.Fatalf("replayed %s as %s, want %s", id, h.body, want[id])
		}
		if err := Verify(secret, h.header.Get(HeaderSignature), h.body, time.Now(), 5*time.Minute); err != nil {
			t.Fatalf("replayed %s: %v", id, err)
		}
	}
}
