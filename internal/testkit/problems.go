package testkit

import (
	"fmt"
	"sync"
	"testing"
)

// Problems are what a test's own servers and readers find wrong on their goroutines, where
// t.Fatal cannot be called (a webhook whose signature does not verify, a line that is not
// JSON); the test fails with each of them at its end.
type Problems struct {
	mu   sync.Mutex
	list []string
}

// NewProblems returns Problems that fail t at its end, each as "<prefix>: <problem>". Cleanups
// run last first: what the test registers after this (the server that adds problems) ends
// before they are reported.
func NewProblems(t testing.TB, prefix string) *Problems {
	p := &Problems{}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, s := range p.list {
			t.Errorf("%s: %s", prefix, s)
		}
	})
	return p
}

// Add records a problem; safe on any goroutine.
func (p *Problems) Add(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, fmt.Sprintf(format, args...))
}
