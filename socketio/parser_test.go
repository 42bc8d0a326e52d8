package socketio

// Helpers in this file are prefixed with "parser" so they cannot collide with
// other test files of the package.

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/siobridge/siobridge/internal/jsonw"
)

// parserSpecCase is one packet from the socket.io-protocol v5 README: its
// text form, its attachments, and the packet it stands for.
type parserSpecCase struct {
	name    string
	text    string
	binary  [][]byte
	want    Packet
	noRound bool // not the canonical encoding, so encoding want gives another text
}

func parserPH(n int) string { return `{"_placeholder":true,"num":` + string(rune('0'+n)) + `}` }

// parserSpecCases lists every example of the spec's "Packet encoding" and
// "Sample session" sections (Engine.IO's leading "4" removed), plus the
// cases of the task brief and of socket.io-parser's own tests.
var parserSpecCases = []parserSpecCase{
	// Packet encoding: connection to a namespace.
	{name: "connect main", text: `0`, want: Packet{Type: PacketConnect, Namespace: "/"}},
	{name: "connect main sid", text: `0{"sid":"wZX3oN0bSVIhsaknAAAI"}`,
		want: Packet{Type: PacketConnect, Namespace: "/", Data: json.RawMessage(`{"sid":"wZX3oN0bSVIhsaknAAAI"}`)}},
	{name: "connect admin", text: `0/admin,`, want: Packet{Type: PacketConnect, Namespace: "/admin"}},
	{name: "connect admin sid", text: `0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}`,
		want: Packet{Type: PacketConnect, Namespace: "/admin", Data: json.RawMessage(`{"sid":"oSO0OpakMV_3jnilAAAA"}`)}},
	{name: "connect error", text: `4{"message":"Not authorized"}`,
		want: Packet{Type: PacketConnectError, Namespace: "/", Data: json.RawMessage(`{"message":"Not authorized"}`)}},
	// Packet encoding: sending and receiving data.
	{name: "event", text: `2["foo"]`, want: Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(`["foo"]`)}},
	{name: "event admin", text: `2/admin,["bar"]`,
		want: Packet{Type: PacketEvent, Namespace: "/admin", Data: json.RawMessage(`["bar"]`)}},
	{name: "binary event", text: `51-["baz",` + parserPH(0) + `]`, binary: [][]byte{{1, 2, 3, 4}},
		want: Packet{Type: PacketBinaryEvent, Namespace: "/", Data: json.RawMessage(`["baz",` + parserPH(0) + `]`),
			Attachments: [][]byte{{1, 2, 3, 4}}}},
	{name: "binary event admin two", text: `52-/admin,["baz",` + parserPH(0) + `,` + parserPH(1) + `]`,
		binary: [][]byte{{1, 2}, {3, 4}},
		want: Packet{Type: PacketBinaryEvent, Namespace: "/admin",
			Data:        json.RawMessage(`["baz",` + parserPH(0) + `,` + parserPH(1) + `]`),
			Attachments: [][]byte{{1, 2}, {3, 4}}}},
	// Packet encoding: acknowledgement.
	{name: "event id", text: `212["foo"]`,
		want: Packet{Type: PacketEvent, Namespace: "/", ID: 12, HasID: true, Data: json.RawMessage(`["foo"]`)}},
	{name: "ack empty", text: `312[]`,
		want: Packet{Type: PacketAck, Namespace: "/", ID: 12, HasID: true, Data: json.RawMessage(`[]`)}},
	{name: "event admin id", text: `2/admin,13["foo"]`,
		want: Packet{Type: PacketEvent, Namespace: "/admin", ID: 13, HasID: true, Data: json.RawMessage(`["foo"]`)}},
	{name: "ack admin", text: `3/admin,13["bar"]`,
		want: Packet{Type: PacketAck, Namespace: "/admin", ID: 13, HasID: true, Data: json.RawMessage(`["bar"]`)}},
	{name: "binary event id", text: `51-14["foo",` + parserPH(0) + `]`, binary: [][]byte{{1, 2, 3, 4}},
		want: Packet{Type: PacketBinaryEvent, Namespace: "/", ID: 14, HasID: true,
			Data: json.RawMessage(`["foo",` + parserPH(0) + `]`), Attachments: [][]byte{{1, 2, 3, 4}}}},
	{name: "ack 14", text: `314["bar"]`,
		want: Packet{Type: PacketAck, Namespace: "/", ID: 14, HasID: true, Data: json.RawMessage(`["bar"]`)}},
	{name: "event 15", text: `215["foo"]`,
		want: Packet{Type: PacketEvent, Namespace: "/", ID: 15, HasID: true, Data: json.RawMessage(`["foo"]`)}},
	{name: "binary ack", text: `61-15["bar",` + parserPH(0) + `]`, binary: [][]byte{{1, 2, 3, 4}},
		want: Packet{Type: PacketBinaryAck, Namespace: "/", ID: 15, HasID: true,
			Data: json.RawMessage(`["bar",` + parserPH(0) + `]`), Attachments: [][]byte{{1, 2, 3, 4}}}},
	// Packet encoding: disconnection from a namespace.
	{name: "disconnect", text: `1`, want: Packet{Type: PacketDisconnect, Namespace: "/"}},
	{name: "disconnect admin", text: `1/admin,`, want: Packet{Type: PacketDisconnect, Namespace: "/admin"}},
	// Sample session.
	{name: "session hey", text: `2["hey","Jude"]`,
		want: Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(`["hey","Jude"]`)}},
	{name: "session hello", text: `2["hello"]`, want: Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(`["hello"]`)}},
	{name: "session world", text: `2["world"]`, want: Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(`["world"]`)}},
	{name: "session admin sid", text: `0/admin,{"sid":"-G5j-67EZFp-q59rADQM"}`,
		want: Packet{Type: PacketConnect, Namespace: "/admin", Data: json.RawMessage(`{"sid":"-G5j-67EZFp-q59rADQM"}`)}},
	{name: "session tellme", text: `2/admin,1["tellme"]`,
		want: Packet{Type: PacketEvent, Namespace: "/admin", ID: 1, HasID: true, Data: json.RawMessage(`["tellme"]`)}},
	{name: "session binary ack", text: `61-/admin,1[` + parserPH(0) + `]`, binary: [][]byte{{0xde, 0xad}},
		want: Packet{Type: PacketBinaryAck, Namespace: "/admin", ID: 1, HasID: true,
			Data: json.RawMessage(`[` + parserPH(0) + `]`), Attachments: [][]byte{{0xde, 0xad}}}},
	// Task brief and socket.io-parser tests.
	{name: "event id 1", text: `21["foo"]`,
		want: Packet{Type: PacketEvent, Namespace: "/", ID: 1, HasID: true, Data: json.RawMessage(`["foo"]`)}},
	{name: "connect token", text: `0{"token":"123"}`,
		want: Packet{Type: PacketConnect, Namespace: "/", Data: json.RawMessage(`{"token":"123"}`)}},
	{name: "connect woot token", text: `0/woot,{"token":"123"}`,
		want: Packet{Type: PacketConnect, Namespace: "/woot", Data: json.RawMessage(`{"token":"123"}`)}},
	{name: "connect error string", text: `4"Unauthorized"`,
		want: Packet{Type: PacketConnectError, Namespace: "/", Data: json.RawMessage(`"Unauthorized"`)}},
	{name: "event numeric name", text: `2[1,"a",{}]`,
		want: Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(`[1,"a",{}]`)}},
	{name: "event negative float name", text: `2[-1.5e3]`,
		want: Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(`[-1.5e3]`)}},
	{name: "event test id", text: `2/test,1["a",1,{}]`,
		want: Packet{Type: PacketEvent, Namespace: "/test", ID: 1, HasID: true, Data: json.RawMessage(`["a",1,{}]`)}},
	{name: "ack 123", text: `3123["a",1,{}]`,
		want: Packet{Type: PacketAck, Namespace: "/", ID: 123, HasID: true, Data: json.RawMessage(`["a",1,{}]`)}},
	{name: "binary ack empty attachment", text: `61-0[` + parserPH(0) + `]`, binary: [][]byte{{}},
		want: Packet{Type: PacketBinaryAck, Namespace: "/", ID: 0, HasID: true,
			Data: json.RawMessage(`[` + parserPH(0) + `]`), Attachments: [][]byte{{}}}},
	{name: "max ack id", text: `218446744073709551615["a"]`,
		want: Packet{Type: PacketEvent, Namespace: "/", ID: math.MaxUint64, HasID: true, Data: json.RawMessage(`["a"]`)}},
	{name: "reserved name as argument", text: `2["x","connect"]`,
		want: Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(`["x","connect"]`)}},
	{name: "escaped name", text: `2["\u0063onnecT"]`,
		want: Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(`["\u0063onnecT"]`)}},
	{name: "whitespace kept", text: `2 [ "a" , 1 ] `,
		want: Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(` [ "a" , 1 ] `)}},
	{name: "connect id", text: `01`, want: Packet{Type: PacketConnect, Namespace: "/", ID: 1, HasID: true}},
	// Not canonical: decoded, but encoded differently.
	{name: "namespace without comma", text: `0/custom`, want: Packet{Type: PacketConnect, Namespace: "/custom"}, noRound: true},
	{name: "explicit main namespace", text: `2/,["a"]`,
		want: Packet{Type: PacketEvent, Namespace: "/", Data: json.RawMessage(`["a"]`)}, noRound: true},
	{name: "leading zeros", text: `502-007["a"]`,
		want: Packet{Type: PacketBinaryEvent, Namespace: "/", ID: 7, HasID: true, Data: json.RawMessage(`["a"]`),
			Attachments: [][]byte{{9}, {8}}}, binary: [][]byte{{9}, {8}}, noRound: true},
}

// parserDecodeAll feeds text then bins to d and returns the packet, failing
// the test if the packet completes too early or not at all.
func parserDecodeAll(t *testing.T, d *decoder, text string, bins [][]byte) *Packet {
	t.Helper()
	p, err := d.DecodeText([]byte(text))
	if err != nil {
		t.Fatalf("DecodeText(%q): %v", text, err)
	}
	for i, b := range bins {
		if p != nil {
			t.Fatalf("DecodeText(%q): packet complete before attachment %d", text, i)
		}
		if p, err = d.DecodeBinary(b); err != nil {
			t.Fatalf("DecodeBinary #%d: %v", i, err)
		}
	}
	if p == nil {
		t.Fatalf("%q: packet incomplete after %d attachments", text, len(bins))
	}
	return p
}

func TestDecodeSpecExamples(t *testing.T) {
	var d decoder // one decoder for all: it must come back clean after each packet
	for _, tc := range parserSpecCases {
		t.Run(tc.name, func(t *testing.T) {
			got := parserDecodeAll(t, &d, tc.text, tc.binary)
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("DecodeText(%q)\n got %+v\nwant %+v", tc.text, *got, tc.want)
			}
		})
	}
}

func TestEncodeSpecExamples(t *testing.T) {
	for _, tc := range parserSpecCases {
		if tc.noRound {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			got := appendEncode([]byte("prefix"), &tc.want)
			if string(got) != "prefix"+tc.text {
				t.Errorf("appendEncode = %q, want %q", got, "prefix"+tc.text)
			}
		})
	}
}

func TestEncodeNamespaceVariants(t *testing.T) {
	for _, tc := range []struct {
		p    Packet
		want string
	}{
		{Packet{Type: PacketConnect}, `0`},                                            // empty namespace means "/"
		{Packet{Type: PacketDisconnect, Namespace: "/a"}, `1/a,`},                     // comma even when nothing follows
		{Packet{Type: PacketBinaryEvent, Data: json.RawMessage(`["a"]`)}, `50-["a"]`}, // count even when 0 (decoders refuse it)
		{Packet{Type: PacketAck, HasID: true, Data: json.RawMessage(`[]`)}, `30[]`},   // id 0 is an id
	} {
		if got := string(appendEncode(nil, &tc.p)); got != tc.want {
			t.Errorf("appendEncode(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestDecodeInvalidPackets(t *testing.T) {
	huge := "5" + strings.Repeat("9", 1000) + `-["a"]`
	cases := []struct{ name, text string }{
		{"empty", ``},
		{"unknown type 7", `7`},
		{"unknown type 9", `999`},
		{"type not digit", `a["x"]`},
		{"type is slash", `/admin,`},
		{"type below zero", ` 2["a"]`},
		// Payloads socket.io-parser's tests reject.
		{"connect error bad json", `442["some","data"`},
		{"connect string", `0/admin,"invalid"`},
		{"connect array", `0[]`},
		{"connect number", `0 1`},
		{"connect null", `0null`},
		{"disconnect object", `1/admin,{}`},
		{"disconnect array", `1[]`},
		{"event unterminated string", `2/admin,"invalid`},
		{"event object", `2/admin,{}`},
		{"event string", `2"foo"`},
		{"event toString", `2[{"toString":"foo"}]`},
		{"event bool name", `2[true,"foo"]`},
		{"event null name", `2[null,"bar"]`},
		{"event array name", `2[["a"]]`},
		{"event empty", `2[]`},
		{"event empty spaced", `2[ ]`},
		{"event missing", `2`},
		{"event missing with ns", `2/admin,`},
		{"event missing with id", `21`},
		{"event reserved connect", `2["connect"]`},
		{"event reserved disconnect", `2["disconnect","123"]`},
		{"event reserved connect_error", `2["connect_error"]`},
		{"event reserved disconnecting", `2/a,1["disconnecting"]`},
		{"event reserved newListener", `2["newListener"]`},
		{"event reserved removeListener", `2["removeListener"]`},
		{"event reserved escaped", `2["\u0063onnect"]`},
		{"binary event reserved", `51-["disconnect"]`},
		{"ack missing", `3`},
		{"ack object", `3{}`},
		{"ack string", `31"x"`},
		{"connect error missing", `4`},
		{"connect error array", `4[]`},
		{"connect error bool", `4true`},
		{"binary ack object", `61-{}`},
		// Headers.
		{"binary no count", `5`},
		{"binary empty count", `5-["a"]`},
		{"binary no dash", `51["a"]`},
		{"binary count garbage", `5x-["a"]`},
		{"binary count then end", `51`},
		{"binary zero attachments", `50-["a"]`},
		{"binary zero attachments leading zeros", `600-["a"]`},
		{"binary too many", `511-["a"]`},
		{"binary huge count", huge},
		{"binary negative count", `5-1-["a"]`},
		{"ack id overflow", `218446744073709551616["a"]`},
		{"ack id overflow long", `2` + strings.Repeat("9", 40) + `["a"]`},
		{"namespace swallows payload", `2/admin["a"]`},
		// JSON.
		{"invalid json", `2["a"`},
		{"single quotes", `2['a']`},
		{"garbage after id", `21a["x"]`},
		{"trailing garbage", `2["a"]x`},
		{"trailing bracket", `2["a"]]`},
		{"two values", `2["a"] ["b"]`},
		{"trailing after object", `0{}x`},
		{"only space", `2 `},
		{"bare garbage", `2foo`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d decoder
			p, err := d.DecodeText([]byte(tc.text))
			if err == nil {
				t.Fatalf("DecodeText(%q) = %+v, want error", tc.text, p)
			}
			if !errors.Is(err, errParse) {
				t.Errorf("DecodeText(%q) error %v does not wrap errParse", tc.text, err)
			}
			if p != nil {
				t.Errorf("DecodeText(%q) returned a packet with its error", tc.text)
			}
		})
	}
}

func TestDecodeMaxAttachments(t *testing.T) {
	d := decoder{MaxAttachments: 2}
	if _, err := d.DecodeText([]byte(`53-["a"]`)); !errors.Is(err, errParse) {
		t.Fatalf("3 attachments with max 2: err = %v", err)
	}
	p := parserDecodeAll(t, &d, `52-["a"]`, [][]byte{{1}, {2}})
	if len(p.Attachments) != 2 {
		t.Fatalf("got %d attachments", len(p.Attachments))
	}
	var def decoder
	if _, err := def.DecodeText([]byte(`511-["a"]`)); !errors.Is(err, errParse) {
		t.Fatalf("11 attachments with default max: err = %v", err)
	}
	parserDecodeAll(t, &def, `510-["a"]`, make([][]byte, 10))
}

func TestDecodeHugeMaxAttachmentsAllocatesLazily(t *testing.T) {
	d := decoder{MaxAttachments: 1 << 30}
	msg := []byte(`5999999999-["a"]`)
	allocs := fewestAllocs(func() {
		d.Reset()
		if _, err := d.DecodeText(msg); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 4 {
		t.Errorf("DecodeText allocated %v times", allocs)
	}
	if p := d.pending; p == nil || cap(p.Attachments) > maxPrealloc {
		t.Errorf("preallocated attachments: %+v", p)
	}
}

func TestDecoderState(t *testing.T) {
	t.Run("binary when none awaited", func(t *testing.T) {
		var d decoder
		if _, err := d.DecodeBinary([]byte{1}); !errors.Is(err, errParse) {
			t.Fatalf("err = %v", err)
		}
		parserDecodeAll(t, &d, `2["a"]`, nil)
		if _, err := d.DecodeBinary([]byte{1}); !errors.Is(err, errParse) {
			t.Fatalf("after complete packet: err = %v", err)
		}
		parserDecodeAll(t, &d, `51-["a",`+parserPH(0)+`]`, [][]byte{{1}})
		if _, err := d.DecodeBinary([]byte{1}); !errors.Is(err, errParse) {
			t.Fatalf("after complete binary packet: err = %v", err)
		}
	})
	t.Run("text while awaiting binary", func(t *testing.T) {
		var d decoder
		if p, err := d.DecodeText([]byte(`52-["a"]`)); p != nil || err != nil {
			t.Fatalf("DecodeText = %v, %v", p, err)
		}
		if p, err := d.DecodeBinary([]byte{1}); p != nil || err != nil {
			t.Fatalf("first attachment = %v, %v", p, err)
		}
		if _, err := d.DecodeText([]byte(`2["b"]`)); !errors.Is(err, errParse) {
			t.Fatalf("text while awaiting: err = %v", err)
		}
		// The partial packet was dropped: the stream starts afresh.
		if _, err := d.DecodeBinary([]byte{2}); !errors.Is(err, errParse) {
			t.Fatalf("binary after drop: err = %v", err)
		}
		parserDecodeAll(t, &d, `2["b"]`, nil)
	})
	t.Run("missing attachments", func(t *testing.T) {
		var d decoder
		if p, err := d.DecodeText([]byte(`52-["a",` + parserPH(0) + `,` + parserPH(1) + `]`)); p != nil || err != nil {
			t.Fatalf("DecodeText = %v, %v", p, err)
		}
		if p, err := d.DecodeBinary([]byte{1}); p != nil || err != nil {
			t.Fatalf("one of two attachments = %v, %v", p, err)
		}
		d.Reset()
		if _, err := d.DecodeBinary([]byte{2}); !errors.Is(err, errParse) {
			t.Fatalf("binary after Reset: err = %v", err)
		}
		parserDecodeAll(t, &d, `2["b"]`, nil)
	})
	t.Run("copies input", func(t *testing.T) {
		var d decoder
		text := []byte(`51-/x,["a",` + parserPH(0) + `]`)
		bin := []byte{1, 2, 3}
		if _, err := d.DecodeText(text); err != nil {
			t.Fatal(err)
		}
		copy(text, strings.Repeat("Z", len(text)))
		p, err := d.DecodeBinary(bin)
		if err != nil || p == nil {
			t.Fatalf("DecodeBinary = %v, %v", p, err)
		}
		bin[0] = 9
		if string(p.Data) != `["a",`+parserPH(0)+`]` || p.Namespace != "/x" || !bytes.Equal(p.Attachments[0], []byte{1, 2, 3}) {
			t.Fatalf("packet aliases caller buffers: %+v", p)
		}
	})
	t.Run("nil binary message", func(t *testing.T) {
		var d decoder
		p := parserDecodeAll(t, &d, `61-[`+parserPH(0)+`]`, [][]byte{nil})
		if p.Attachments[0] == nil || len(p.Attachments[0]) != 0 {
			t.Fatalf("attachment = %#v, want empty non-nil", p.Attachments[0])
		}
	})
}

func TestParseErrorWrapping(t *testing.T) {
	var d decoder
	_, err := d.DecodeText([]byte(`2["connect"]`))
	if !errors.Is(err, errParse) || !strings.HasPrefix(err.Error(), errParse.Error()+": ") {
		t.Fatalf("err = %v", err)
	}
}

func TestPacketTypeString(t *testing.T) {
	want := []string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"}
	for i, w := range want {
		if got := PacketType(i).String(); got != w {
			t.Errorf("PacketType(%d) = %q, want %q", i, got, w)
		}
	}
	if got := PacketType(42).String(); got != "PacketType(42)" {
		t.Errorf("unknown type = %q", got)
	}
}

func TestEventName(t *testing.T) {
	for _, tc := range []struct {
		data, name, rest string
	}{
		{`["foo",1,{"a":2}]`, "foo", `[1,{"a":2}]`},
		{`["foo"]`, "foo", `[]`},
		{`[1,{"a":2}]`, "1", `[{"a":2}]`},
		{`[-1.5e+3]`, "-1.5e+3", `[]`},
		{`[0, "x"]`, "0", `[ "x"]`},
		{` [ "sp" , 1 ] `, "sp", `[ 1 ] `},
		{`["\u00e9v\"t\n","x"]`, "év\"t\n", `["x"]`},
		{`["",null]`, "", `[null]`},
		{`["foo",` + parserPH(0) + `]`, "foo", `[` + parserPH(0) + `]`},
		{"[\"caf\xe9\"]", "caf\ufffd", `[]`}, // invalid UTF-8 decodes as encoding/json does
	} {
		name, rest, err := eventName(json.RawMessage(tc.data))
		if err != nil || name != tc.name || string(rest) != tc.rest {
			t.Errorf("eventName(%s) = %q, %s, %v; want %q, %s", tc.data, name, rest, err, tc.name, tc.rest)
		}
	}
	for _, data := range []string{
		``, ` `, `{}`, `"foo"`, `null`, `[`, `[]`, `[ ]`, `[true]`, `[null]`, `[{}]`, `[[]]`,
		`["a",]`, `["a", ]`, `["a"`, `["a" 1]`, `["a"]x`, `[01]`, `[-]`, `[1.]`, `[1e]`, `["a`, `["a\"]`,
		"[\"a\x01\"]", `["\x"]`, `[1`,
	} {
		if name, rest, err := eventName(json.RawMessage(data)); err == nil || !errors.Is(err, errParse) {
			t.Errorf("eventName(%q) = %q, %s, %v; want errParse", data, name, rest, err)
		}
	}
}

func TestEventNameDoesNotAlias(t *testing.T) {
	data := json.RawMessage(`["a",1]`)
	_, rest, err := eventName(data)
	if err != nil {
		t.Fatal(err)
	}
	rest[1] = '2'
	if string(data) != `["a",1]` {
		t.Fatalf("eventName's rest aliases its input: %s", data)
	}
}

func TestDecodeArgs(t *testing.T) {
	atts := [][]byte{{1, 2}, {3}}
	for _, tc := range []struct {
		data string
		want []any
	}{
		{`[]`, []any{}},
		{` [ ] `, []any{}},
		{`["foo",1,{"a":[true,null]}]`, []any{"foo", json.Number("1"), map[string]any{"a": []any{true, nil}}}},
		{`[12345678901234567890,-1.5e300]`, []any{json.Number("12345678901234567890"), json.Number("-1.5e300")}},
		{`["up",` + parserPH(0) + `]`, []any{"up", []byte{1, 2}}},
		{`[{"f":` + parserPH(1) + `,"g":[` + parserPH(0) + `,` + parserPH(1) + `]}]`,
			[]any{map[string]any{"f": []byte{3}, "g": []any{[]byte{1, 2}, []byte{3}}}}},
		{`[{"_placeholder":true,"num":1,"extra":"ignored"}]`, []any{[]byte{3}}},
		{`[{"_placeholder":false,"num":7}]`, []any{map[string]any{"_placeholder": false, "num": json.Number("7")}}},
		{`[{"_placeholder":"true","num":7}]`, []any{map[string]any{"_placeholder": "true", "num": json.Number("7")}}},
	} {
		got, err := decodeArgs(json.RawMessage(tc.data), atts)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("decodeArgs(%s) = %#v, %v; want %#v", tc.data, got, err, tc.want)
		}
	}
	for _, data := range []string{
		``, `{}`, `null`, `"x"`, `1`, `[1`, `[1] 2`, `[1]]`, `[1,]`,
		`[` + parserPH(2) + `]`,
		`[{"_placeholder":true,"num":-1}]`,
		`[{"_placeholder":true,"num":1.0}]`,
		`[{"_placeholder":true,"num":1e0}]`,
		`[{"_placeholder":true,"num":"0"}]`,
		`[{"_placeholder":true}]`,
		`[{"_placeholder":true,"num":null}]`,
		`[{"_placeholder":true,"num":99999999999999999999999}]`,
		`["a",{"deep":[{"_placeholder":true,"num":5}]}]`,
	} {
		if got, err := decodeArgs(json.RawMessage(data), atts); err == nil || !errors.Is(err, errParse) {
			t.Errorf("decodeArgs(%s) = %#v, %v; want errParse", data, got, err)
		}
	}
	// A placeholder in a packet without attachments is out of range too.
	if _, err := decodeArgs(json.RawMessage(`[`+parserPH(0)+`]`), nil); !errors.Is(err, errParse) {
		t.Errorf("placeholder without attachments: err = %v", err)
	}
}

func TestEncodeArgs(t *testing.T) {
	type point struct {
		X int    `json:"x"`
		B []byte `json:"b"`
	}
	for _, tc := range []struct {
		name   string
		values []any
		want   string
		atts   [][]byte
	}{
		{"empty", []any{}, `[]`, nil},
		{"nil slice", nil, `[]`, nil},
		{"scalars", []any{"a", true, false, nil, 1, int8(-2), int16(3), int32(-4), int64(5), uint(6), uint8(7), uint16(8), uint32(9), uint64(math.MaxUint64)},
			`["a",true,false,null,1,-2,3,-4,5,6,7,8,9,18446744073709551615]`, nil},
		{"floats", []any{1.5, 0.0, -2.0, 1e21, 1e20, 1e-7, 0.000001, float32(0.1), float32(1e-7), 123456789.0},
			`[1.5,0,-2,1e+21,100000000000000000000,1e-7,0.000001,0.1,1e-7,123456789]`, nil},
		{"strings", []any{"q\"b\\s/\n\r\t\x01\x1f<>&", "\u2028\u2029é😀", "bad\xffutf8"},
			`["q\"b\\s/\n\r\t\u0001\u001f<>&","\u2028\u2029é😀","bad\ufffdutf8"]`, nil},
		{"number", []any{json.Number("12345678901234567890"), json.Number("-1.5e-3")}, `[12345678901234567890,-1.5e-3]`, nil},
		{"empty number", []any{json.Number("")}, `[0]`, nil},
		{"raw", []any{json.RawMessage(`{"a": [1, 2]}`), json.RawMessage(nil)}, `[{"a": [1, 2]},null]`, nil},
		{"non-finite as JSON.stringify", []any{math.NaN(), math.Inf(1), float32(math.Inf(-1))}, `[null,null,null]`, nil},
		{"containers", []any{[]any{}, map[string]any{}, []any(nil), map[string]any(nil)}, `[[],{},null,null]`, nil},
		{"top binary", []any{"up", []byte{1, 2}, []byte{3}}, `["up",` + parserPH(0) + `,` + parserPH(1) + `]`, [][]byte{{1, 2}, {3}}},
		{"nil bytes", []any{[]byte(nil)}, `[` + parserPH(0) + `]`, [][]byte{nil}},
		{"nested binary sorted keys",
			[]any{map[string]any{"z": []byte{1}, "a": []any{[]byte{2}, map[string]any{"m": []byte{3}}}, "k": 1}},
			`[{"a":[` + parserPH(0) + `,{"m":` + parserPH(1) + `}],"k":1,"z":` + parserPH(2) + `}]`,
			[][]byte{{2}, {3}, {1}}},
		{"struct via encoding/json", []any{point{X: 1, B: []byte{1}}}, `[{"x":1,"b":"AQ=="}]`, nil},
		{"typed slice via encoding/json", []any{[]string{"a"}, map[string]int{"b": 1}}, `[["a"],{"b":1}]`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, atts, err := EncodeArgs(tc.values)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != tc.want {
				t.Errorf("data = %s\nwant   %s", data, tc.want)
			}
			if !reflect.DeepEqual(atts, tc.atts) {
				t.Errorf("attachments = %#v, want %#v", atts, tc.atts)
			}
			if !json.Valid(data) {
				t.Errorf("invalid JSON %s", data)
			}
		})
	}
}

func TestEncodeArgsMatchesEncodingJSON(t *testing.T) {
	values := []any{
		"hé\"llo\u007f\x00", 1.0, 1.5e300, -3e-10, 100.25, float32(3.4e38), float32(1e21), 5e-324,
		map[string]any{"b": []any{1, "x", nil}, "a": map[string]any{"c": false}},
	}
	got, _, err := EncodeArgs(values)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("EncodeArgs = %s\njson.Marshal %s", got, want)
	}
}

func TestEncodeArgsErrors(t *testing.T) {
	cyclic := []any{nil}
	cyclic[0] = cyclic
	cyclicMap := map[string]any{}
	cyclicMap["self"] = cyclicMap
	for name, values := range map[string][]any{
		"bad raw":    {json.RawMessage(`{`)},
		"empty raw":  {json.RawMessage{}},
		"bad number": {json.Number("1x")},
		"channel":    {make(chan int)},
		"cyclic":     {cyclic},
		"cyclic map": {cyclicMap},
	} {
		if data, _, err := EncodeArgs(values); err == nil {
			t.Errorf("%s: EncodeArgs = %s, want error", name, data)
		}
	}
}

func TestArgsDepthLimitRoundTrip(t *testing.T) {
	// The deepest payload decodeArgs accepts must encode again.
	deep := strings.Repeat("[", jsonw.MaxDepth) + strings.Repeat("]", jsonw.MaxDepth)
	v, err := decodeArgs(json.RawMessage(deep), nil)
	if err != nil {
		t.Fatalf("decodeArgs at max depth: %v", err)
	}
	data, _, err := EncodeArgs(v)
	if err != nil || string(data) != deep {
		t.Fatalf("EncodeArgs at max depth: %v", err)
	}
	if _, err := decodeArgs(json.RawMessage("["+deep+"]"), nil); !errors.Is(err, errParse) {
		t.Fatalf("decodeArgs beyond max depth: %v", err)
	}
}

// TestRoundTripArgs goes the whole way: values -> EncodeArgs -> appendEncode
// -> decoder -> eventName -> decodeArgs.
func TestRoundTripArgs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		typ    PacketType
		nsp    string
		id     uint64
		hasID  bool
		values []any
		want   []any
	}{
		{"plain event", PacketEvent, "/", 0, false, []any{"chat", "hi", 3},
			[]any{"chat", "hi", json.Number("3")}},
		{"event with ack", PacketEvent, "/admin", 42, true, []any{"q", map[string]any{"n": 1.5}},
			[]any{"q", map[string]any{"n": json.Number("1.5")}}},
		{"binary event", PacketBinaryEvent, "/files", 7, true,
			[]any{"upload", []byte("abc"), map[string]any{"thumb": []byte{0, 255}, "name": "x.png"}},
			[]any{"upload", []byte("abc"), map[string]any{"thumb": []byte{0, 255}, "name": "x.png"}}},
		{"binary ack", PacketBinaryAck, "/", math.MaxUint64, true, []any{[]byte{}, []any{[]byte{9}}},
			[]any{[]byte{}, []any{[]byte{9}}}},
		{"empty ack", PacketAck, "/", 0, true, []any{}, []any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, atts, err := EncodeArgs(tc.values)
			if err != nil {
				t.Fatal(err)
			}
			if tc.typ.isBinary() != (atts != nil) {
				t.Fatalf("attachments %v for type %v", atts, tc.typ)
			}
			p := Packet{Type: tc.typ, Namespace: tc.nsp, ID: tc.id, HasID: tc.hasID, Data: data, Attachments: atts}
			text := appendEncode(nil, &p)
			var d decoder
			got := parserDecodeAll(t, &d, string(text), atts)
			if !reflect.DeepEqual(*got, p) {
				t.Fatalf("decoded %+v\nwant    %+v", *got, p)
			}
			args, err := decodeArgs(got.Data, got.Attachments)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(args, tc.want) {
				t.Fatalf("decodeArgs = %#v\nwant %#v", args, tc.want)
			}
			if tc.typ == PacketEvent || tc.typ == PacketBinaryEvent {
				name, rest, err := eventName(got.Data)
				if err != nil || name != tc.want[0] {
					t.Fatalf("eventName = %q, %v", name, err)
				}
				restArgs, err := decodeArgs(rest, got.Attachments)
				if err != nil || !reflect.DeepEqual(restArgs, tc.want[1:]) {
					t.Fatalf("rest args = %#v, %v", restArgs, err)
				}
			}
		})
	}
}

func TestRoundTripSpecExamples(t *testing.T) {
	for _, tc := range parserSpecCases {
		t.Run(tc.name, func(t *testing.T) {
			var d decoder
			p := parserDecodeAll(t, &d, tc.text, tc.binary)
			again := parserDecodeAll(t, &d, string(appendEncode(nil, p)), p.Attachments)
			if !reflect.DeepEqual(p, again) {
				t.Fatalf("round trip changed packet:\n%+v\n%+v", p, again)
			}
		})
	}
}

// fewestAllocs is testing.AllocsPerRun taken three times, keeping the least: the count is
// process-wide, so goroutines left running by other tests (timers, sweepers) can only add to
// it.
func fewestAllocs(f func()) float64 {
	least := testing.AllocsPerRun(100, f)
	for range 2 {
		least = min(least, testing.AllocsPerRun(100, f))
	}
	return least
}

func TestDecodeAllocations(t *testing.T) {
	var d decoder
	msg := []byte(`2/chat,12["message",{"text":"hello"}]`)
	allocs := fewestAllocs(func() {
		if _, err := d.DecodeText(msg); err != nil {
			t.Fatal(err)
		}
	})
	// The packet and its copy of the payload; the namespace string is reused.
	if allocs > 2 {
		t.Errorf("DecodeText: %v allocations, want <= 2", allocs)
	}
	bad := []byte(`2["connect"]`)
	allocs = fewestAllocs(func() {
		if _, err := d.DecodeText(bad); err == nil {
			t.Fatal("no error")
		}
	})
	if allocs > 0 {
		t.Errorf("rejecting a packet: %v allocations, want 0", allocs)
	}
}

// Typed sinks keep results alive without boxing them into interfaces, which
// would add allocations to the reported numbers.
var (
	parserBenchBytes  []byte
	parserBenchName   string
	parserBenchPacket *Packet
	parserBenchArgs   []any
	parserBenchAtts   [][]byte
)

func BenchmarkEncode(b *testing.B) {
	b.Run("AppendEncode", func(b *testing.B) {
		b.ReportAllocs()
		p := Packet{Type: PacketEvent, Namespace: "/chat", ID: 12, HasID: true,
			Data: json.RawMessage(`["message",{"text":"hello","user":"bob"}]`)}
		buf := make([]byte, 0, 128)
		for b.Loop() {
			buf = appendEncode(buf[:0], &p)
		}
		parserBenchBytes = buf
	})
	b.Run("EncodeArgs", func(b *testing.B) {
		b.ReportAllocs()
		values := []any{"message", "hello world", 42, 3.25, true, nil}
		for b.Loop() {
			data, _, err := EncodeArgs(values)
			if err != nil {
				b.Fatal(err)
			}
			parserBenchBytes = data
		}
	})
	b.Run("EncodeArgsRaw", func(b *testing.B) {
		// What POST /emit and the webhook reply's emit hand over: the app's JSON, unparsed.
		b.ReportAllocs()
		values := []any{"message", json.RawMessage(`{"text":"hello there, how are you?","user":"bob","n":42,"tags":["a","b"]}`)}
		for b.Loop() {
			data, _, err := EncodeArgs(values)
			if err != nil {
				b.Fatal(err)
			}
			parserBenchBytes = data
		}
	})
	b.Run("EncodeArgsBinaryMap", func(b *testing.B) {
		b.ReportAllocs()
		values := []any{"upload", map[string]any{"name": "a.png", "size": 1024, "data": make([]byte, 1024)}}
		for b.Loop() {
			data, atts, err := EncodeArgs(values)
			if err != nil {
				b.Fatal(err)
			}
			parserBenchBytes, parserBenchAtts = data, atts
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	b.Run("DecodeText", func(b *testing.B) {
		b.ReportAllocs()
		msg := []byte(`2/chat,12["message",{"text":"hello","user":"bob"}]`)
		b.SetBytes(int64(len(msg)))
		var d decoder
		for b.Loop() {
			p, err := d.DecodeText(msg)
			if err != nil {
				b.Fatal(err)
			}
			parserBenchPacket = p
		}
	})
	b.Run("DecodeBinary", func(b *testing.B) {
		b.ReportAllocs()
		msg := []byte(`51-["upload",{"_placeholder":true,"num":0}]`)
		bin := make([]byte, 1024)
		var d decoder
		for b.Loop() {
			if _, err := d.DecodeText(msg); err != nil {
				b.Fatal(err)
			}
			p, err := d.DecodeBinary(bin)
			if err != nil || p == nil {
				b.Fatal(err)
			}
			parserBenchPacket = p
		}
	})
	b.Run("EventName", func(b *testing.B) {
		b.ReportAllocs()
		data := json.RawMessage(`["message",{"text":"hello","user":"bob"}]`)
		for b.Loop() {
			name, rest, err := eventName(data)
			if err != nil {
				b.Fatal(err)
			}
			parserBenchName, parserBenchBytes = name, rest
		}
	})
	b.Run("DecodeArgs", func(b *testing.B) {
		b.ReportAllocs()
		data := json.RawMessage(`["message",{"text":"hello","user":"bob"},42,` + parserPH(0) + `]`)
		atts := [][]byte{{1, 2, 3}}
		for b.Loop() {
			args, err := decodeArgs(data, atts)
			if err != nil {
				b.Fatal(err)
			}
			parserBenchArgs = args
		}
	})
}
