package command

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/siobridge/siobridge/socketio"
)

// TestClusterSaysWhenIncomplete: the "cluster" member of an answer says "complete":false only
// when a server the answer waited for did not reply, and is absent without a cluster adapter.
func TestClusterSaysWhenIncomplete(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reach socketio.Reach
		want  string
	}{
		{"single node", socketio.Reach{}, "null"},
		{"every server replied", socketio.Reach{Nodes: 3, Replied: 3}, `{"nodes":3,"replied":3}`},
		{"one did not", socketio.Reach{Nodes: 3, Replied: 2}, `{"nodes":3,"replied":2,"complete":false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(clusterOf(tc.reach))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("cluster = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestCheckRefusesAsEmitDoes: a batch is checked with Check before any of it is emitted, so
// Check must refuse each request Emit refuses, with the same error, and pass the others
// without making the dynamic namespace a "*" server would make for Emit.
func TestCheckRefusesAsEmitDoes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		namespaces []string
		req        EmitRequest
		want       string // "" for none
	}{
		{"fine", nil, EmitRequest{Event: "x"}, ""},
		{"dynamic namespace", []string{"*"}, EmitRequest{Selection: Selection{Namespace: "/any"}, Event: "x"}, ""},
		{"no event", nil, EmitRequest{}, `invalid request: "event" is required`},
		{"reserved event", nil, EmitRequest{Event: "disconnecting"}, `invalid request: event "disconnecting" is reserved`},
		{"ack timeout too long", nil, EmitRequest{Event: "x", AckTimeoutMS: MaxAckTimeout.Milliseconds() + 1},
			`invalid request: "ack_timeout_ms" must be between 0 and 300000`},
		{"volatile with ack", nil, EmitRequest{Event: "x", Volatile: true, AckTimeoutMS: 1},
			`invalid request: "volatile" and "ack_timeout_ms" cannot be combined`},
		{"namespace without slash", nil, EmitRequest{Selection: Selection{Namespace: "chat"}, Event: "x"},
			`invalid request: namespace "chat" must start with "/"`},
		{"unknown namespace", nil, EmitRequest{Selection: Selection{Namespace: "/nope"}, Event: "x"},
			`unknown namespace "/nope"`},
		{"empty room", nil, EmitRequest{Selection: Selection{To: []string{"r", ""}}, Event: "x"},
			`invalid request: room names and socket ids must not be empty`},
		{"empty exception", nil, EmitRequest{Selection: Selection{Except: []string{""}}, Event: "x"},
			`invalid request: room names and socket ids must not be empty`},
		{"bad binary", nil, EmitRequest{Event: "x", Args: []json.RawMessage{json.RawMessage(`{"$binary":7}`)}},
			`invalid request: args[0]: "$binary" must be a base64 string`},
		{"bad JSON", nil, EmitRequest{Event: "x", Args: []json.RawMessage{json.RawMessage(`{`)}},
			`invalid request: args[0]: invalid JSON`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := socketio.NewServer(socketio.Options{Namespaces: tc.namespaces})
			defer srv.Close()
			checked := errText(tc.req.Check(srv))
			if checked != tc.want {
				t.Fatalf("Check = %q, want %q", checked, tc.want)
			}
			if tc.req.Namespace != "" && srv.Lookup(tc.req.Namespace) != nil {
				t.Fatalf("Check made namespace %q", tc.req.Namespace)
			}
			_, err := Emit(context.Background(), srv, &tc.req)
			if emitted := errText(err); emitted != checked {
				t.Fatalf("Emit refuses with %q, Check with %q", emitted, checked)
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
