package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"
)

// After most clients leave at once (a deploy of the app's pages, a network cut), the Go
// runtime keeps the memory they used: it returns freed memory to the system gradually, and
// only after a collection, which an idle server may not run for minutes. releaseAfterDrops
// returns it at once: every releaseEvery it reads the session count, and when the count has
// fallen to half its peak since the last release, and by at least releaseMinDrop sessions, it
// collects and returns what is free (debug.FreeOSMemory, a collection of what is left: rare,
// and small next to what was released).
const (
	releaseEvery   = 2 * time.Second
	releaseMinDrop = 1000
)

// memoryReleaser decides when to release, from successive session counts.
type memoryReleaser struct {
	peak int // the most sessions seen since the last release
}

// observe takes the current count and reports whether to release now.
func (m *memoryReleaser) observe(n int) bool {
	if n > m.peak {
		m.peak = n
		return false
	}
	if m.peak-n >= releaseMinDrop && n <= m.peak/2 {
		m.peak = n
		return true
	}
	return false
}

// releaseAfterDrops runs until ctx ends, reading count (the open sessions).
func releaseAfterDrops(ctx context.Context, count func() int, log *slog.Logger) {
	t := time.NewTicker(releaseEvery)
	defer t.Stop()
	var m memoryReleaser
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n := count(); m.observe(n) {
				start := time.Now()
				debug.FreeOSMemory()
				log.Debug("returned free memory to the system after clients left", "sessions", n, "took", time.Since(start).String())
			}
		}
	}
}
