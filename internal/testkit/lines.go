package testkit

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// OutputWait bounds each wait on Lines: for a line a process should print, or a log line.
const OutputWait = 20 * time.Second

// Lines is what a process or a logger writes, kept whole and split into lines as it comes, for
// the test to read and to wait on. The zero value is ready to use, as a log destination
// (slog.NewTextHandler(&lines, nil)) among others, and is safe for concurrent use. A
// Process's Lines end when it exits, and so does every wait on them.
type Lines struct {
	mu      sync.Mutex
	name    string // of the process, in messages
	lines   []string
	partial []byte
	taken   []bool // by Take, by index
	first   int    // the first line not taken
	closed  bool
	changed chan struct{} // closed and replaced at each new line and at the end; nil until waited on
	onLine  func(string)
}

// Write adds p, which may end in the middle of a line.
func (l *Lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.partial = append(l.partial, p...)
	from := len(l.lines)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, strings.TrimSuffix(string(l.partial[:i]), "\r"))
		l.taken = append(l.taken, false)
		l.partial = l.partial[i+1:]
	}
	added, onLine := l.lines[from:], l.onLine
	if len(added) > 0 {
		l.notify()
	}
	l.mu.Unlock()
	if onLine != nil {
		for _, line := range added {
			onLine(line)
		}
	}
	return len(p), nil
}

// end makes the last partial line a line and ends every wait.
func (l *Lines) end() {
	l.mu.Lock()
	if len(l.partial) > 0 {
		line := string(l.partial)
		l.lines = append(l.lines, line)
		l.taken = append(l.taken, false)
		l.partial = nil
		if l.onLine != nil {
			defer l.onLine(line)
		}
	}
	l.closed = true
	l.notify()
	l.mu.Unlock()
}

func (l *Lines) notify() {
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// String returns everything written so far.
func (l *Lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, line := range l.lines {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.Write(l.partial)
	return b.String()
}

// All returns the whole lines written so far, taken or not.
func (l *Lines) All() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// Pending returns the whole lines written so far that Take has not taken, in order.
func (l *Lines) Pending() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for i := l.first; i < len(l.lines); i++ {
		if !l.taken[i] {
			out = append(out, l.lines[i])
		}
	}
	return out
}

// Await waits until cond holds for everything written so far, checking it again at each new
// line. The test fails after OutputWait, or when the lines end (the process exited) first.
func (l *Lines) Await(t testing.TB, what string, cond func(text string) bool) {
	t.Helper()
	l.await(t, OutputWait, what, func([]string) bool { return cond(l.String()) })
}

// Match waits for a line that re matches, the first one written, and returns its submatches.
// The test fails after OutputWait, or when the lines end first.
func (l *Lines) Match(t testing.TB, re *regexp.Regexp, what string) []string {
	t.Helper()
	return l.match(t, OutputWait, re, what)
}

func (l *Lines) match(t testing.TB, within time.Duration, re *regexp.Regexp, what string) []string {
	t.Helper()
	var m []string
	seen := 0
	l.await(t, within, what, func(lines []string) bool {
		for ; seen < len(lines); seen++ {
			if m = re.FindStringSubmatch(lines[seen]); m != nil {
				return true
			}
		}
		return false
	})
	return m
}

// Take returns the first line not yet taken that match accepts, and marks it taken: the lines
// match passes over stay for a later Take, in the order they came. This is how a test reads a
// process that prints one message a line for several readers (clients, replies, events). The
// test fails after OutputWait, or when the lines end first.
func (l *Lines) Take(t testing.TB, what string, match func(line string) bool) string {
	t.Helper()
	var found string
	l.await(t, OutputWait, what, func(lines []string) bool {
		l.mu.Lock()
		from := l.first
		l.mu.Unlock()
		for i := from; i < len(lines); i++ {
			if !l.isTaken(i) && match(lines[i]) && l.take(i) {
				found = lines[i]
				return true
			}
		}
		return false
	})
	return found
}

// TakeJSON is Take for a process that prints one JSON value a line: it returns the first line
// not yet taken that decodes into a T that match accepts. Lines that do not decode stay.
func TakeJSON[T any](t testing.TB, l *Lines, what string, match func(T) bool) T {
	t.Helper()
	var v T
	l.Take(t, what, func(line string) bool {
		var d T
		if json.Unmarshal([]byte(line), &d) != nil || !match(d) {
			return false
		}
		v = d
		return true
	})
	return v
}

func (l *Lines) isTaken(i int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.taken[i]
}

// take marks line i taken, unless another Take has: it reports whether this one did.
func (l *Lines) take(i int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.taken[i] {
		return false
	}
	l.taken[i] = true
	for l.first < len(l.taken) && l.taken[l.first] {
		l.first++
	}
	return true
}

// await calls check with the lines so far, and again after each new line, until it returns
// true; the test fails after within, or when the lines end first. check runs without the lock:
// lines only grow, so the slice it gets stays as it is.
func (l *Lines) await(t testing.TB, within time.Duration, what string, check func(lines []string) bool) {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		l.mu.Lock()
		lines, closed := l.lines[:len(l.lines):len(l.lines)], l.closed
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		changed := l.changed
		l.mu.Unlock()
		if check(lines) {
			return
		}
		if closed {
			t.Fatalf("waiting for %s: %s", what, l.endedBecause())
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
	}
}

func (l *Lines) endedBecause() string {
	if l.name == "" {
		return "the output ended"
	}
	return l.name + " exited"
}
