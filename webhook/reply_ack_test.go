package webhook

import (
	"reflect"
	"testing"
)

// FuzzAckOnly holds the shortcut for {"ack":[...]} replies to the general reading of a reply:
// whenever the shortcut reads a body, the general path reads the same actions from it, with
// no problem.
func FuzzAckOnly(f *testing.F) {
	for _, body := range []string{
		`{"ack":[{"ok":true}]}`, `{"ack":[]}`, `{"ack":[1,"two",null,{"a":[3]}]} `, `{"ack":[1] }`,
		`{"ack":[1],"emit":[]}`, `{"ack":[1],"ack":[2]}`, `{"ack":[1]`, `{"ack":[}`, `{"ack":[1]}}`,
		`{"ack":[1]} x`, `{"ack":["\ud800"]}`, "{\"ack\":[\"\xff\"]}", `{"ack":[{"$binary":"AAE="}]}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		args, ok := ackOnly(body)
		if !ok {
			return
		}
		acts, problems, err := parseReplyObject(body)
		if err != nil || len(problems) > 0 || acts.Ack == nil || !reflect.DeepEqual(*acts.Ack, args) ||
			!reflect.DeepEqual(acts, Actions{Ack: acts.Ack}) {
			t.Errorf("body %q: shortcut %q; general %+v %q %v", body, args, acts, problems, err)
		}
	})
}

var benchActs Actions

// BenchmarkParseReply reads the reply most apps send to an event: an ack and nothing else.
func BenchmarkParseReply(b *testing.B) {
	body := []byte(`{"ack":[{"ok":true,"id":"m-1234","at":1795750800000}]}`)
	b.ReportAllocs()
	for b.Loop() {
		benchActs, _, _ = parseReply(body)
	}
}
