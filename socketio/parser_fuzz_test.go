package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeText feeds one text message then up to three binary messages to
// a decoder. It must never panic, every error must wrap errParse, and any
// packet it returns must survive appendEncode -> decode unchanged.
func FuzzDecodeText(f *testing.F) {
	for _, tc := range parserSpecCases {
		var b [3][]byte
		copy(b[:], tc.binary)
		f.Add([]byte(tc.text), b[0], b[1], b[2])
	}
	f.Add([]byte(`53-["a"]`), []byte{1}, []byte{2}, []byte{3})
	f.Add([]byte(`2["\u0063onnect"]`), []byte(nil), []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, text, b0, b1, b2 []byte) {
		d := decoder{MaxAttachments: 3}
		p, err := d.DecodeText(text)
		for _, b := range [][]byte{b0, b1, b2} {
			if err != nil || p != nil {
				break
			}
			p, err = d.DecodeBinary(b)
		}
		if err != nil {
			if !errors.Is(err, errParse) {
				t.Fatalf("error %v does not wrap errParse", err)
			}
			return
		}
		if p == nil {
			// Still awaiting attachments: a text message must be refused.
			if _, err := d.DecodeText([]byte(`2["a"]`)); !errors.Is(err, errParse) {
				t.Fatalf("text while awaiting: %v", err)
			}
			return
		}
		if _, err := d.DecodeBinary([]byte{0}); !errors.Is(err, errParse) {
			t.Fatalf("binary after a complete packet: %v", err)
		}
		if p.Namespace == "" || p.Namespace[0] != '/' {
			t.Fatalf("namespace %q", p.Namespace)
		}
		if p.Type.isBinary() != (len(p.Attachments) > 0) {
			t.Fatalf("type %v with %d attachments", p.Type, len(p.Attachments))
		}

		enc := appendEncode(nil, p)
		var d2 decoder
		again, err := d2.DecodeText(enc)
		for _, b := range p.Attachments {
			if err != nil || again != nil {
				break
			}
			again, err = d2.DecodeBinary(b)
		}
		if err != nil || again == nil {
			t.Fatalf("re-decoding %q: %v, %v", enc, again, err)
		}
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("round trip of %q via %q:\n%+v\n%+v", text, enc, p, again)
		}

		// The payload accessors must accept whatever the decoder accepted.
		switch p.Type {
		case PacketEvent, PacketBinaryEvent:
			name, rest, err := eventName(p.Data)
			if err != nil {
				t.Fatalf("eventName(%s): %v", p.Data, err)
			}
			if IsReservedEvent(name) {
				t.Fatalf("reserved name %q passed", name)
			}
			if !json.Valid(rest) {
				t.Fatalf("eventName rest %s is not JSON", rest)
			}
			fallthrough
		case PacketAck, PacketBinaryAck:
			// May fail on bad placeholders, but only with errParse.
			if _, err := decodeArgs(p.Data, p.Attachments); err != nil && !errors.Is(err, errParse) {
				t.Fatalf("decodeArgs(%s): %v", p.Data, err)
			}
		}
	})
}

// FuzzDecodeArgs checks that decodeArgs never panics and that what it
// returns survives EncodeArgs -> decodeArgs unchanged.
func FuzzDecodeArgs(f *testing.F) {
	f.Add([]byte(`["foo",1,{"a":[true,null]}]`), []byte{1}, []byte{2})
	f.Add([]byte(`["up",{"_placeholder":true,"num":1},{"x":{"_placeholder":true,"num":0}}]`), []byte{1}, []byte{})
	f.Add([]byte(`[{"_placeholder":true,"num":2}]`), []byte(nil), []byte(nil))
	f.Add([]byte(`[12345678901234567890,-1.5e-300,"\ud800\u00e9"]`), []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, data, a0, a1 []byte) {
		atts := [][]byte{a0, a1}
		values, err := decodeArgs(data, atts)
		if err != nil {
			if !errors.Is(err, errParse) {
				t.Fatalf("error %v does not wrap errParse", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		enc, encAtts, err := EncodeArgs(values)
		if err != nil {
			t.Fatalf("EncodeArgs(%#v): %v", values, err)
		}
		if !json.Valid(enc) {
			t.Fatalf("EncodeArgs produced invalid JSON %s", enc)
		}
		again, err := decodeArgs(enc, encAtts)
		if err != nil {
			t.Fatalf("decodeArgs(%s): %v", enc, err)
		}
		if !reflect.DeepEqual(values, again) {
			t.Fatalf("round trip of %s via %s:\n%#v\n%#v", data, enc, values, again)
		}
	})
}

// FuzzEventName checks eventName against a full decode: on valid JSON it
// must succeed exactly when the first element is a string or a number, and
// then agree with encoding/json on the name and the remaining arguments.
func FuzzEventName(f *testing.F) {
	f.Add([]byte(`["foo",1,{"a":2}]`))
	f.Add([]byte(`[1,{"a":2}]`))
	f.Add([]byte(` [ "\u00e9\"" , [] ] `))
	f.Add([]byte(`[-0.5e+10]`))
	f.Add([]byte(`["a",]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		name, rest, err := eventName(data)
		if err != nil && !errors.Is(err, errParse) {
			t.Fatalf("error %v does not wrap errParse", err)
		}
		if !json.Valid(data) {
			return // only the brackets and first element are checked then
		}
		var all []any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&all) != nil {
			if err == nil {
				t.Fatalf("eventName(%s) accepted a non-array", data)
			}
			return
		}
		var want string
		var ok bool
		if len(all) > 0 {
			switch v := all[0].(type) {
			case string:
				want, ok = v, true
			case json.Number:
				want, ok = string(v), true
			}
		}
		if !ok {
			if err == nil {
				t.Fatalf("eventName(%s) = %q, want error", data, name)
			}
			return
		}
		if err != nil {
			t.Fatalf("eventName(%s): %v", data, err)
		}
		if name != want {
			t.Fatalf("eventName(%s) name = %q, want %q", data, name, want)
		}
		var restVals []any
		dec = json.NewDecoder(bytes.NewReader(rest))
		dec.UseNumber()
		if err := dec.Decode(&restVals); err != nil || !json.Valid(rest) {
			t.Fatalf("eventName(%s) rest %s: %v", data, rest, err)
		}
		if !reflect.DeepEqual(restVals, all[1:]) {
			t.Fatalf("eventName(%s) rest = %#v, want %#v", data, restVals, all[1:])
		}
	})
}
