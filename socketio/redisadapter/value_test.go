package redisadapter

import (
	"encoding/hex"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/siobridge/siobridge/socketio"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The fixtures are notepack.io 3.0.1's output (the Node.js adapter's encoder), e.g.
// notepack.encode(["uid", {type: 2, data: [...], nsp: "/"}, {rooms: ["r"], except: [], flags: {}}]).
func TestDecodeNotepackBroadcast(t *testing.T) {
	msg := unhex(t, "93a375696483a47479706502a4646174619da2657601ffcb3ff8000000000000cf0000010000000000d3ffffff0000000000a178c0c382a16201a16191c2c4020102c40103d7ff1d5353006553f100a36e7370a12f83a5726f6f6d7391a172a665786365707490a5666c61677380")
	if uid, err := peekUID(msg); err != nil || uid != "uid" {
		t.Fatalf("peekUID = %q, %v", uid, err)
	}
	v, err := decodeMsgpack(msg)
	if err != nil {
		t.Fatal(err)
	}
	parts := v.([]any)
	p, err := packetFromWire(parts[1], "/")
	if err != nil {
		t.Fatal(err)
	}
	want := `["ev",1,-1,1.5,1099511627776,-1099511627776,"x",null,true,{"b":1,"a":[false]},{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},"2023-11-14T22:13:20.123Z"]`
	if string(p.Data) != want || p.Type != socketio.PacketBinaryEvent || len(p.Attachments) != 2 ||
		string(p.Attachments[0]) != "\x01\x02" || string(p.Attachments[1]) != "\x03" {
		t.Fatalf("packet %v %s %q", p.Type, p.Data, p.Attachments)
	}
	opts := optsFromWire(parts[2])
	if !slices.Equal(opts.Rooms, []string{"r"}) || len(opts.Except) != 0 {
		t.Fatalf("opts %+v", opts)
	}
}

func TestDecodeNotepackSpecials(t *testing.T) {
	for _, tc := range []struct{ name, hex, json string }{
		// Legacy forms notepack still decodes: undefined, ArrayBuffer, Date in milliseconds.
		{"legacy", "93d40000c70300010203d700000000000000007b", `[null,{"_placeholder":true,"num":0},"1970-01-01T00:00:00.123Z"]`},
		{"undefined value dropped, order kept", "83a17a01a161d40000a16202", `{"z":1,"b":2}`},
		{"number keys", "820102a17801", `{"1":2,"x":1}`},
		{"float32", "92ca3fc00000ca3dcccccd", `[1.5,0.10000000149011612]`},
		{"uint64 beyond int64", "91cfffffffffffffffff", `[18446744073709551615]`},
		{"timestamp32", "91d6ff00000001", `["1970-01-01T00:00:01.000Z"]`},
		{"unknown extension", "91d5070102", `[[7,{"_placeholder":true,"num":0}]]`},
		{"nan and infinity", "92cb7ff8000000000000cb7ff0000000000000", `[null,null]`},
		// notepack.io writes -0 as the integer 0; a double -0 is written as encoding/json does.
		{"negative zero", "92cb8000000000000000cb3ff8000000000000", `[-0,1.5]`},
		{"number keys named as String(n)", "84cb800000000000000002cb7ff800000000000001cb3fb999999999999a03c004", `{"0":2,"NaN":1,"0.1":3,"null":4}`},
		{"str8 and bin8", "92d903616263c40161", `["abc",{"_placeholder":true,"num":0}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := decodeMsgpack(unhex(t, tc.hex))
			if err != nil {
				t.Fatal(err)
			}
			if got := mustJSON(t, v); got != tc.json {
				t.Fatalf("got %s, want %s", got, tc.json)
			}
		})
	}
}

func TestEncodeLikeNotepack(t *testing.T) {
	for _, tc := range []struct{ json, hex string }{
		// notepack.encode(JSON.parse(json))
		{`["e",1.0,1e3,0.1,-0,{"z":1,"a":2}]`, "96a16501cd03e8cb3fb999999999999a0082a17a01a16102"},
		{`[-1,-33,-129,-40000,4294967296,null,true,"é"]`, "98ffd0dfd1ff7fd2ffff63c0cf0000000100000000c0c3a2c3a9"},
	} {
		v, err := parseArgs([]byte(tc.json), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := encodeMsgpack(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != tc.hex {
			t.Errorf("%s: got %s, want %s", tc.json, got, tc.hex)
		}
	}
}

func TestPacketRoundTrip(t *testing.T) {
	data, atts, err := socketio.EncodeArgs([]any{"ev", []byte{1}, map[string]any{"b": []byte{2, 3}, "n": 1.25}, "\u2028<>&"})
	if err != nil {
		t.Fatal(err)
	}
	in := &socketio.Packet{Type: socketio.PacketBinaryEvent, Namespace: "/chat", Data: data, Attachments: atts}
	w, err := packetToWire(in)
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := asInt(w.get("type")); typ != 2 {
		t.Fatalf("wire type %d, want 2 as Node.js writes events", typ)
	}
	b, err := encodeMsgpack(w)
	if err != nil {
		t.Fatal(err)
	}
	v, err := decodeMsgpack(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := packetFromWire(v, "/chat")
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Data) != string(in.Data) || out.Type != in.Type || len(out.Attachments) != 2 {
		t.Fatalf("round trip: %s %q, want %s %q", out.Data, out.Attachments, in.Data, in.Attachments)
	}
	// Without attachments, placeholder-shaped objects are data, as socket.io-parser has it.
	v, err = parseArgs([]byte(`[{"_placeholder":true,"num":0}]`), nil)
	if err != nil || mustJSON(t, v) != `[{"_placeholder":true,"num":0}]` {
		t.Fatalf("placeholder in a text packet: %v %v", v, err)
	}
	if _, err := parseArgs([]byte(`[{"_placeholder":true,"num":3}]`), [][]byte{{1}}); err == nil {
		t.Fatal("placeholder out of range accepted")
	}
}

// A number used as a map key is named as JavaScript names it: String(n).
func TestNumberPropertyKeys(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{0.1, "0.1"}, {-2.5, "-2.5"}, {1e21, "1e+21"}, {1e-7, "1e-7"}, {1.5e-10, "1.5e-10"},
		{123456789012, "123456789012"}, {math.Copysign(0, -1), "0"}, {math.NaN(), "NaN"},
		{math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"}, {1.5e300, "1.5e+300"}, {0.000001, "0.000001"},
	} {
		if got := propertyKey(tc.f); got != tc.want {
			t.Errorf("%v: got %s, want %s", tc.f, got, tc.want)
		}
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	deep := strings.Repeat("91", maxDepth+5) + "c0"
	for _, h := range []string{"", "c1", "92c0", "93a1", deep, "c0c0", "dbffffffff"} {
		if _, err := decodeMsgpack(unhex(t, h)); err == nil {
			t.Errorf("%q: no error", h)
		}
	}
	if _, err := parseArgs([]byte(strings.Repeat("[", maxDepth+5)+strings.Repeat("]", maxDepth+5)), nil); err == nil {
		t.Error("deep JSON accepted")
	}
}

func FuzzDecodeMsgpack(f *testing.F) {
	f.Add(unhex(f, "93a375696483a47479706502a4646174619da2657601ffcb3ff8000000000000cf0000010000000000d3ffffff0000000000a178c0c382a16201a16191c2c4020102c40103d7ff1d5353006553f100a36e7370a12f83a5726f6f6d7391a172a665786365707490a5666c61677380"))
	f.Add(unhex(f, "93d40000c70300010203d700000000000000007b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeMsgpack(b)
		if err != nil {
			return
		}
		var atts [][]byte
		if _, err := appendJSON(nil, v, &atts, 0); err != nil {
			t.Fatalf("decoded value cannot be written as JSON: %v", err)
		}
		if _, err := encodeMsgpack(v); err != nil {
			t.Fatalf("decoded value cannot be encoded again: %v", err)
		}
		_, _ = decodeMessage(b)
		_, _ = packetFromWire(v, "/")
	})
}
