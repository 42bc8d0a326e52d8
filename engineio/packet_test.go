package engineio

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecodePayload(t *testing.T) {
	type want struct {
		typ    packetType
		data   string
		binary bool
	}
	cases := []struct {
		name string
		body string
		want []want
		err  bool
	}{
		// The engine.io-protocol spec's examples.
		{"message", "4hello", []want{{packetMessage, "hello", false}}, false},
		{"two packets", "4hello\x1e4€", []want{{packetMessage, "hello", false}, {packetMessage, "€", false}}, false},
		{"text and binary", "4hello\x1ebAQIDBA==", []want{{packetMessage, "hello", false}, {packetMessage, "\x01\x02\x03\x04", true}}, false},
		{"pong", "3", []want{{packetPong, "", false}}, false},
		{"close", "1", []want{{packetClose, "", false}}, false},
		{"noop", "6", []want{{packetNoop, "", false}}, false},
		{"empty message", "4", []want{{packetMessage, "", false}}, false},
		{"empty binary", "b", []want{{packetMessage, "", true}}, false},
		{"empty body", "", nil, true},
		{"unknown type", "7x", nil, true},
		{"not a digit", "xyz", nil, true},
		{"empty packet between", "4a\x1e\x1e4b", nil, true},
		{"trailing separator", "4a\x1e", nil, true},
		{"bad base64", "b@@@", nil, true},
		{"one bad packet refuses all", "4a\x1e4b\x1e9", nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodePayload([]byte(c.body))
			if c.err {
				if err == nil || !errors.Is(err, ErrDecode) || got != nil {
					t.Fatalf("want ErrDecode and nothing decoded, got %v %v", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d packets, want %d", len(got), len(c.want))
			}
			for i, w := range c.want {
				if got[i].typ != w.typ || string(got[i].data) != w.data || got[i].binary != w.binary {
					t.Fatalf("packet %d: got %+v, want %+v", i, got[i], w)
				}
			}
		})
	}
}

func TestMessagePayloadForms(t *testing.T) {
	text := NewMessage([]byte("hé"), false)
	bin := NewMessage([]byte{1, 2, 3, 4}, true)
	var body []byte
	body = text.appendPayload(body)
	body = append(body, recordSeparator)
	body = bin.appendPayload(body)
	if string(body) != "4hé\x1ebAQIDBA==" {
		t.Fatalf("payload %q", body)
	}
	if text.payloadLen()+1+bin.payloadLen() != len(body) {
		t.Fatal("payloadLen disagrees with appendPayload")
	}
	if text.Len() != 3 || bin.Len() != 4 {
		t.Fatalf("Len %d %d", text.Len(), bin.Len())
	}
	// Decoding what the server would send gives the messages back.
	got, err := decodePayload(body)
	if err != nil || len(got) != 2 || string(got[0].data) != "hé" || !bytes.Equal(got[1].data, []byte{1, 2, 3, 4}) {
		t.Fatalf("round trip: %v %v", got, err)
	}
}

func FuzzDecodePayload(f *testing.F) {
	for _, seed := range []string{"4hello", "4a\x1ebAQID", "3", "1", "6", "2probe", "b", "4\x1e4\x1e4", "\x1e", "bQ=="} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		packets, err := decodePayload(body)
		if err != nil {
			if packets != nil {
				t.Fatal("packets returned with an error")
			}
			return
		}
		// Whatever decodes re-encodes to a payload that decodes to the same packets.
		var out []byte
		for i, p := range packets {
			if i > 0 {
				out = append(out, recordSeparator)
			}
			var m *Message
			if p.binary {
				m = NewMessage(p.data, true)
			} else {
				m = newPacket(p.typ, p.data)
			}
			out = m.appendPayload(out)
		}
		again, err := decodePayload(out)
		if err != nil || len(again) != len(packets) {
			t.Fatalf("re-decode of %q: %v", out, err)
		}
		for i := range again {
			if again[i].typ != packets[i].typ || again[i].binary != packets[i].binary || !bytes.Equal(again[i].data, packets[i].data) {
				t.Fatalf("packet %d changed: %+v -> %+v", i, packets[i], again[i])
			}
		}
	})
}
