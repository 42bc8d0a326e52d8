package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/socketiotest"
)

func TestKeepHeaders(t *testing.T) {
	all := map[string]string{"user-agent": "ua", "cookie": "a=b", "authorization": "Bearer x", "x-forwarded-for": "192.0.2.1"}
	hs := &socketio.Handshake{Address: "203.0.113.7", Headers: maps.Clone(all), Query: map[string]string{"EIO": "4"},
		Auth: json.RawMessage(`{"token":"t"}`), URL: "/socket.io/?EIO=4", XDomain: true}
	tests := []struct {
		name string
		f    *HeaderFilter
		want map[string]string
	}{
		{"nil shows all", nil, all},
		{"star shows all", KeepHeaders("*"), all},
		{"names in any case", KeepHeaders("User-Agent", "X-FORWARDED-FOR", "x-absent"), map[string]string{"user-agent": "ua", "x-forwarded-for": "192.0.2.1"}},
		{"none", KeepHeaders(), map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.f.Apply(hs)
			if !reflect.DeepEqual(got.Headers, tt.want) {
				t.Errorf("headers %v, want %v", got.Headers, tt.want)
			}
			rest, wantRest := *got, *hs
			rest.Headers, wantRest.Headers = nil, nil
			if !reflect.DeepEqual(rest, wantRest) {
				t.Errorf("the rest of the handshake changed: %+v, want %+v", rest, wantRest)
			}
			if !reflect.DeepEqual(hs.Headers, all) {
				t.Errorf("Apply changed its argument's headers to %v", hs.Headers)
			}
		})
	}
	if KeepHeaders("cookie").Apply(nil) != nil {
		t.Error("Apply(nil) is not nil")
	}
}

// TestBridgeHandshakeHeaders: the connect, event and disconnect webhooks show the handshake
// headers that BridgeOptions.HandshakeHeaders keeps, and by default all of them.
func TestBridgeHandshakeHeaders(t *testing.T) {
	sent := http.Header{"Cookie": {"session=s3cret"}, "Authorization": {"Bearer user-token"}, "User-Agent": {"test-agent"}}
	tests := []struct {
		name  string
		f     *HeaderFilter
		want  map[string]string
		exact bool // only the headers in want; otherwise at least them
	}{
		{"default", nil, map[string]string{"cookie": "session=s3cret", "authorization": "Bearer user-token", "user-agent": "test-agent"}, false},
		{"user-agent", KeepHeaders("User-Agent", "x-absent"), map[string]string{"user-agent": "test-agent"}, true},
		{"none", KeepHeaders(), map[string]string{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hooks := make(chan []byte, 8)
			app := newApp(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				hooks <- body
			})
			d := newDeliverer(t, DelivererOptions{URL: app.URL})
			srv := socketio.NewServer(socketio.Options{})
			NewBridge(BridgeOptions{Server: srv, Deliverer: d, Kinds: []Kind{KindConnect, KindEvent, KindDisconnect}, HandshakeHeaders: tt.f})
			ts := httptest.NewServer(srv)
			t.Cleanup(func() {
				srv.Close()
				ts.Close()
			})
			c := socketiotest.DialHeader(t, ts.URL, "", sent)
			c.Connect("/", "")
			c.Write(`42["e",1]`)
			c.Write(`42["e",2]`) // the second event's handshake is the one kept from the first
			c.Conn.Close()
			for _, kind := range []Kind{KindConnect, KindEvent, KindEvent, KindDisconnect} {
				body := receive(t, hooks, string(kind)+" webhook")
				var p Payload
				if err := json.Unmarshal(body, &p); err != nil || p.Type != kind || p.Socket.Handshake == nil {
					t.Fatalf("got %s (%v), want a %s webhook with a handshake", body, err, kind)
				}
				got := p.Socket.Handshake.Headers
				if tt.exact && !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s webhook: handshake headers %v, want %v", kind, got, tt.want)
				}
				for k, v := range tt.want {
					if got[k] != v {
						t.Errorf("%s webhook: handshake header %s %q, want %q", kind, k, got[k], v)
					}
				}
				if len(tt.want) == 0 && !bytes.Contains(body, []byte(`"headers":{}`)) {
					t.Errorf("%s webhook: want \"headers\":{} in %s", kind, body)
				}
			}
		})
	}
}
