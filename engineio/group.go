package engineio

import (
	"sync"
	"sync/atomic"
)

// group counts the goroutines a Server starts, so that Close can wait for them. Unlike a
// sync.WaitGroup, it may be given a goroutine while Close is waiting: a session closed by the
// server mid-upgrade still starts its reader and writer to flush its last packets, from the
// request's goroutine. Wait returns once none is running. Starting and ending a goroutine
// take no lock, except the end that brings the count to zero.
type group struct {
	n    atomic.Int64
	mu   sync.Mutex
	idle *sync.Cond // on mu; made by the first Wait
}

// Go runs f on a new goroutine, counted until f returns.
func (g *group) Go(f func()) {
	g.n.Add(1)
	go func() {
		defer g.done()
		f()
	}()
}

func (g *group) done() {
	if g.n.Add(-1) != 0 {
		return
	}
	g.mu.Lock()
	if g.idle != nil {
		g.idle.Broadcast()
	}
	g.mu.Unlock()
}

// Wait blocks until no goroutine of the group is running.
func (g *group) Wait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.idle == nil {
		g.idle = sync.NewCond(&g.mu)
	}
	for g.n.Load() > 0 {
		g.idle.Wait()
	}
}
