package group

import (
	"sync"
	"sync/atomic"
)

// Group counts the goroutines its owner starts, so that the owner's Close can wait for them.
// Unlike a sync.WaitGroup, it may be given a goroutine while Close is waiting (an Engine.IO
// session closed by the server mid-upgrade still starts its reader and writer to flush its
// last packets, from the request's goroutine). Wait returns once none is running. Starting
// and ending a goroutine take no lock, except the end that brings the count to zero. The
// zero value is ready to use; a Group must not be copied.
type Group struct {
	n    atomic.Int64
	mu   sync.Mutex
	idle *sync.Cond // on mu; made by the first Wait
}

// Go runs f on a new goroutine, counted until f returns.
func (g *Group) Go(f func()) {
	g.n.Add(1)
	go func() {
		defer g.done()
		f()
	}()
}

func (g *Group) done() {
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
func (g *Group) Wait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.idle == nil {
		g.idle = sync.NewCond(&g.mu)
	}
	for g.n.Load() > 0 {
		g.idle.Wait()
	}
}
