package redisadapter

import (
	"bytes"
	"strings"
	"testing"

	"github.com/siobridge/siobridge/socketio"
)

const testUID = "0123456789abcdef"

func testBroadcast(t *testing.T, p *socketio.Packet, opts socketio.BroadcastOptions, requestID string) clusterMessage {
	t.Helper()
	pkt, err := packetToWire(p)
	if err != nil {
		t.Fatal(err)
	}
	d := &object{}
	d.set("packet", pkt)
	if requestID != "" {
		d.set("requestId", requestID)
	}
	d.set("opts", wireOptsObject(opts, nil))
	return clusterMessage{uid: testUID, nsp: "/", typ: clusterBroadcast, data: d}
}

// TestClusterMessageEncoding: a message is JSON unless a type that may carry binary does,
// then msgpack of the whole message; either way it decodes to what was sent, and its first
// bytes tell its sender.
func TestClusterMessageEncoding(t *testing.T) {
	plain := testBroadcast(t, &socketio.Packet{Type: socketio.PacketEvent, Namespace: "/", Data: []byte(`["ev",1,{"b":2,"a":null}]`)},
		socketio.BroadcastOptions{Rooms: []string{"r", "r"}, Except: []string{"x"}, Volatile: true}, "")
	binary := testBroadcast(t, &socketio.Packet{Type: socketio.PacketBinaryEvent, Namespace: "/", Data: []byte(`["ev",{"_placeholder":true,"num":0}]`),
		Attachments: [][]byte{{1, 2, 3}}}, socketio.BroadcastOptions{}, "")
	joinData := &object{}
	joinData.set("opts", wireOptsObject(socketio.BroadcastOptions{Rooms: []string{"a"}}, nil))
	joinData.set("rooms", []any{"b"})
	binaryJoin := &object{}
	binaryJoin.set("rooms", []any{[]byte{1}})

	for _, tc := range []struct {
		name     string
		m        clusterMessage
		wantJSON string // "" for msgpack
		wantErr  string
	}{
		{name: "broadcast without binary is JSON", m: plain,
			wantJSON: `{"uid":"0123456789abcdef","nsp":"/","type":3,"data":{"packet":{"type":2,"data":["ev",1,{"b":2,"a":null}],"nsp":"/"},"opts":{"rooms":["r"],"except":["x"],"flags":{"volatile":true}}}}`},
		{name: "broadcast with binary is msgpack", m: binary},
		{name: "join is JSON", m: clusterMessage{uid: testUID, nsp: "/chat", typ: clusterSocketsJoin, data: joinData},
			wantJSON: `{"uid":"0123456789abcdef","nsp":"/chat","type":4,"data":{"opts":{"rooms":["a"],"except":[],"flags":{}},"rooms":["b"]}}`},
		{name: "heartbeat has no data", m: clusterMessage{uid: testUID, nsp: "/", typ: clusterHeartbeat},
			wantJSON: `{"uid":"0123456789abcdef","nsp":"/","type":2}`},
		{name: "binary in a join is refused", m: clusterMessage{uid: testUID, nsp: "/", typ: clusterSocketsJoin, data: binaryJoin},
			wantErr: "carries binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeClusterMessage(tc.m)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("encode = %q, %v; want an error with %q", b, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantJSON != "" && string(b) != tc.wantJSON {
				t.Fatalf("encoded %s\nwant    %s", b, tc.wantJSON)
			}
			if tc.wantJSON == "" && b[0] == '{' {
				t.Fatalf("encoded as JSON, want msgpack: %s", b)
			}
			got, err := decodeClusterMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.uid != tc.m.uid || got.nsp != tc.m.nsp || got.typ != tc.m.typ {
				t.Fatalf("decoded %+v, want %+v", got, tc.m)
			}
			again, err := encodeClusterMessage(got)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("re-encoded %q, %v; want %q", again, err, b)
			}
			j, m := selfPrefixes(testUID)
			if !hasSelfPrefix(b, j, m) {
				t.Fatalf("%q is not seen as this node's own", b)
			}
			j, m = selfPrefixes("fedcba9876543210")
			if hasSelfPrefix(b, j, m) {
				t.Fatalf("%q is seen as another node's", b)
			}
		})
	}
}

// TestClusterMessageFromNode: a message as Node.js writes it (uid and nsp after the data)
// decodes, packet and selection included.
func TestClusterMessageFromNode(t *testing.T) {
	m, err := decodeClusterMessage([]byte(`{"type":3,"data":{"packet":{"type":2,"data":["hi",{"x":[1.5]}],"nsp":"/"},"opts":{"rooms":["r"],"except":["e"],"flags":{"volatile":true}}},"uid":"aaaaaaaaaaaaaaaa","nsp":"/"}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := packetFromWire(m.data.get("packet"), "/")
	if err != nil || string(p.Data) != `["hi",{"x":[1.5]}]` {
		t.Fatalf("packet %+v, %v", p, err)
	}
	opts := optsFromWire(m.data.get("opts"))
	if m.uid != "aaaaaaaaaaaaaaaa" || len(opts.Rooms) != 1 || opts.Rooms[0] != "r" || len(opts.Except) != 1 || opts.Except[0] != "e" {
		t.Fatalf("decoded %+v, opts %+v", m, opts)
	}
}

// TestClusterMessageRefused: what is not a ClusterAdapter message is an error.
func TestClusterMessageRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"JSON array", `[1,2]`},
		{"broken JSON", `{"uid":"a","nsp":"/","type":3`},
		{"trailing JSON", `{"uid":"a","nsp":"/","type":3}{}`},
		{"no namespace", `{"uid":"a","type":3}`},
		{"type 0", `{"uid":"a","nsp":"/","type":0}`},
		{"type 14", `{"uid":"a","nsp":"/","type":14}`},
		{"type as text", `{"uid":"a","nsp":"/","type":"3"}`},
		{"uid not a string", `{"uid":1,"nsp":"/","type":3}`},
		{"data not an object", `{"uid":"a","nsp":"/","type":3,"data":[1]}`},
		{"deep JSON", `{"uid":"a","nsp":"/","type":3,"data":` + strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2001)},
		{"msgpack not a map", "\x93\x01\x02\x03"},
		{"truncated msgpack", "\x84\xa3uid\xb0abc"},
		{"msgpack string longer than the message", "\x81\xa3uid\xdb\xff\xff\xff\xff"},
		{"msgpack trailing bytes", "\x80\x00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := decodeClusterMessage([]byte(tc.in)); err == nil {
				t.Fatalf("decoded %+v, want an error", m)
			}
		})
	}
}

// FuzzDecodeClusterMessage: whatever bytes Redis brings, decoding returns an error or a
// message of a known type that encodes again, and never panics.
func FuzzDecodeClusterMessage(f *testing.F) {
	f.Add([]byte(`{"type":3,"data":{"packet":{"type":2,"data":["hi"],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}},"uid":"aaaaaaaaaaaaaaaa","nsp":"/"}`))
	f.Add([]byte(`{"type":8,"data":{"requestId":"x","sockets":[{"id":"s","rooms":["s"],"data":null,"handshake":{}}]},"uid":"a","nsp":"/"}`))
	f.Add([]byte(`{"uid":"a","nsp":"/","type":1}`))
	for _, m := range []clusterMessage{
		{uid: testUID, nsp: "/", typ: clusterBroadcastAck, data: func() *object {
			o := &object{}
			o.set("requestId", "r")
			o.set("packet", []byte{0, 1})
			return o
		}()},
	} {
		b, err := encodeClusterMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeClusterMessage(b)
		if err != nil {
			return
		}
		if m.typ < clusterInitialHeartbeat || m.typ > clusterAdapterClose {
			t.Fatalf("decoded type %d", m.typ)
		}
		_, _ = encodeClusterMessage(m)
	})
}
