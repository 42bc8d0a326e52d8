package redisadapter

import "testing"

// TestJSONRequestID: the request id of an answer is read without decoding the answer, wherever
// it stands; an answer whose id is not a string, or that is not JSON, is left to the full
// decoding.
func TestJSONRequestID(t *testing.T) {
	for _, tc := range []struct {
		payload string
		id      string
		ok      bool
	}{
		{`{"requestId":"a1","sockets":[{"id":"x","handshake":{}}]}`, "a1", true},
		{`{"type":8,"requestId":"b2","clientCount":3}`, "b2", true},
		{`{"sockets":[{"requestId":"inner"}],"requestId":"c3"}`, "c3", true},
		{`{"requestId":7,"count":1}`, "", false},
		{`{"count":1}`, "", false},
		{`{"requestId":`, "", false},
		{"\x83\xa4type\x09", "", false}, // msgpack
		{``, "", false},
	} {
		id, ok := jsonRequestID([]byte(tc.payload))
		if id != tc.id || ok != tc.ok {
			t.Errorf("jsonRequestID(%q) = %q, %v; want %q, %v", tc.payload, id, ok, tc.id, tc.ok)
		}
	}
}
