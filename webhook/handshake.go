package webhook

import (
	"strings"

	"github.com/siobridge/siobridge/socketio"
)

// HeaderFilter chooses which of a socket's handshake headers webhooks and GET /sockets show:
// every header a client sends reaches the app otherwise, its cookies and credentials included,
// and is repeated in each of its event webhooks. The nil *HeaderFilter shows them all.
type HeaderFilter struct {
	keep map[string]struct{} // lower-case names
}

// KeepHeaders returns a filter that shows only the headers named, in any case; with no names
// it shows none. A name "*" stands for every header: KeepHeaders("*") returns nil.
func KeepHeaders(names ...string) *HeaderFilter {
	f := &HeaderFilter{keep: make(map[string]struct{}, len(names))}
	for _, n := range names {
		if n == "*" {
			return nil
		}
		f.keep[strings.ToLower(n)] = struct{}{}
	}
	return f
}

// Apply returns hs with only the headers f shows: hs itself when f is nil, otherwise a copy
// (hs is not changed).
func (f *HeaderFilter) Apply(hs *socketio.Handshake) *socketio.Handshake {
	if f == nil || hs == nil {
		return hs
	}
	out := *hs
	out.Headers = make(map[string]string, min(len(f.keep), len(hs.Headers)))
	for name := range f.keep {
		if v, ok := hs.Headers[name]; ok {
			out.Headers[name] = v
		}
	}
	return &out
}
