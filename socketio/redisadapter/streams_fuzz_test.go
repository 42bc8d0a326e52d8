package redisadapter

import (
	"testing"
)

// FuzzDecodeStreamEntry: whatever a stream entry holds, decoding it returns an error or a
// message of a known type, and never panics; a message it reads is read again the same
// once written back.
func FuzzDecodeStreamEntry(f *testing.F) {
	f.Add("abc", "/", "3", `{"packet":{"type":2,"data":["e",1],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}`)
	f.Add("abc", "/", "1", "")
	f.Add("abc", "/chat", "8", `{"requestId":"x","sockets":[]}`)
	f.Add("abc", "/", "3", "gqZwYWNrZXSDpHR5cGUCpGRhdGGSoWXEAQGjbnNwoS+kb3B0c4A=")
	f.Add("", "/", "13", "{")
	f.Fuzz(func(t *testing.T, uid, nsp, typ, data string) {
		values := map[string]any{"uid": uid, "nsp": nsp, "type": typ}
		if data != "" {
			values["data"] = data
		}
		m, err := decodeStreamEntry(values)
		if err != nil {
			return
		}
		if m.typ < clusterInitialHeartbeat || m.typ > clusterAdapterClose || m.nsp != nsp {
			t.Fatalf("decoded %+v from %v", m, values)
		}
		again, err := streamEntryValues(m)
		if err != nil {
			return // binary in a type that may not carry it, as Node.js would not write
		}
		back := map[string]any{}
		for i := 0; i+1 < len(again); i += 2 {
			back[again[i].(string)] = again[i+1]
		}
		m2, err := decodeStreamEntry(back)
		if err != nil || m2.typ != m.typ || m2.uid != m.uid || m2.nsp != m.nsp || (m2.data == nil) != (m.data == nil) {
			t.Fatalf("written back %v, read %+v, %v", back, m2, err)
		}
	})
}

func TestStreamEntryRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    clusterMessage
		data string // the data field's first byte: '{' for JSON, else base64
	}{
		{"heartbeat", clusterMessage{uid: "u", nsp: "/", typ: clusterHeartbeat}, ""},
		{"json", clusterMessage{uid: "u", nsp: "/", typ: clusterBroadcast, data: objectOf("k", "v")}, "{"},
		{"binary", clusterMessage{uid: "u", nsp: "/", typ: clusterBroadcast, data: objectOf("k", []byte{1, 2})}, "g"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			values, err := streamEntryValues(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			fields := map[string]any{}
			for i := 0; i < len(values); i += 2 {
				fields[values[i].(string)] = values[i+1]
			}
			if fields["type"] != "2" && fields["type"] != "3" {
				t.Fatalf("type field %v", fields["type"])
			}
			got, _ := fields["data"].(string)
			if (tc.data == "") != (got == "") || (got != "" && got[:1] != tc.data) {
				t.Fatalf("data field %q", got)
			}
			m, err := decodeStreamEntry(fields)
			if err != nil || m.uid != "u" || m.typ != tc.m.typ {
				t.Fatalf("decoded %+v, %v", m, err)
			}
		})
	}
	if _, err := streamEntryValues(clusterMessage{uid: "u", nsp: "/", typ: clusterFetchSockets, data: objectOf("k", []byte{1})}); err == nil {
		t.Fatal("binary in FETCH_SOCKETS written")
	}
}

func TestParseStreamID(t *testing.T) {
	for in, ok := range map[string]bool{"1-0": true, "1700000000000-12": true, "$": false, "1": false, "-1": false, "1-": false, "+1-2": false, "a-b": false, "1-2-3": false} {
		if _, got := parseStreamID(in); got != ok {
			t.Errorf("parseStreamID(%q) ok = %v", in, got)
		}
	}
	a, _ := parseStreamID("5-1")
	if !a.less(a.next()) || a.next().String() != "5-2" || (streamID{5, ^uint64(0)}).next().String() != "6-0" {
		t.Fatal("next")
	}
}

func objectOf(k string, v any) *object {
	o := &object{}
	o.set(k, v)
	return o
}
