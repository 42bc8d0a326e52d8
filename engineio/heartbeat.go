package engineio

import (
	"container/heap"
	"sync"
	"time"
)

// heartbeats schedules every session's next heartbeat (a ping to send, or a pong that is
// late) on one runtime timer, instead of a timer per session: a min-heap of sessions by due
// time, and the timer set to the earliest. When it fires, every session due is handed to
// Session.heartbeat, which schedules its next one.
type heartbeats struct {
	mu      sync.Mutex
	due     beatHeap
	timer   *time.Timer
	armedAt time.Time // when the timer fires; zero when it is not set
	closed  bool
	// base is when the schedule was made: a session's due time is kept as the time since
	// (Session.beatAt), 8 bytes instead of a time.Time's 24, on the monotonic clock.
	base time.Time
}

func newHeartbeats() *heartbeats {
	h := &heartbeats{base: time.Now()}
	h.timer = time.AfterFunc(time.Hour, h.fire)
	h.timer.Stop()
	return h
}

// schedule sets the session's next heartbeat at the given time, replacing any other.
func (h *heartbeats) schedule(s *Session, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	s.beatAt = at.Sub(h.base)
	if s.beatIdx >= 0 {
		heap.Fix(&h.due, int(s.beatIdx))
	} else {
		heap.Push(&h.due, s)
	}
	if h.armedAt.IsZero() || at.Before(h.armedAt) {
		h.armedAt = at
		h.timer.Reset(time.Until(at))
	}
}

// remove drops the session's heartbeat, if it has one.
func (h *heartbeats) remove(s *Session) {
	h.mu.Lock()
	if s.beatIdx >= 0 {
		heap.Remove(&h.due, int(s.beatIdx))
	}
	h.mu.Unlock()
}

// stop ends the schedule: nothing is scheduled or fired after it.
func (h *heartbeats) stop() {
	h.mu.Lock()
	h.closed = true
	h.timer.Stop()
	clear(h.due)
	h.due = nil
	h.mu.Unlock()
}

// fire runs on the timer: it takes every session that is due, sets the timer for the next
// one, and runs the heartbeats outside the lock.
func (h *heartbeats) fire() {
	h.mu.Lock()
	now := time.Now()
	var ready []*Session
	for len(h.due) > 0 && h.due[0].beatAt <= now.Sub(h.base) {
		ready = append(ready, heap.Pop(&h.due).(*Session))
	}
	h.armedAt = time.Time{}
	if len(h.due) > 0 && !h.closed {
		h.armedAt = h.base.Add(h.due[0].beatAt)
		h.timer.Reset(h.armedAt.Sub(now))
	}
	h.mu.Unlock()
	for _, s := range ready {
		s.heartbeat()
	}
}

// beatHeap orders sessions by their next heartbeat; each session knows its index (beatIdx,
// -1 when it is not in the heap). Guarded by heartbeats.mu.
type beatHeap []*Session

func (q beatHeap) Len() int           { return len(q) }
func (q beatHeap) Less(i, j int) bool { return q[i].beatAt < q[j].beatAt }
func (q beatHeap) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].beatIdx = int32(i)
	q[j].beatIdx = int32(j)
}
func (q *beatHeap) Push(x any) {
	s := x.(*Session)
	s.beatIdx = int32(len(*q))
	*q = append(*q, s)
}
func (q *beatHeap) Pop() any {
	old := *q
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	s.beatIdx = -1
	return s
}
