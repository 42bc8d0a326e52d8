package main

import "testing"

func TestMemoryReleaserReleasesAfterLargeDrops(t *testing.T) {
	var m memoryReleaser
	steps := []struct {
		sessions int
		release  bool
	}{
		{0, false},
		{5000, false},
		{4000, false}, // a fifth left: not half
		{2600, false}, // not half of the peak yet
		{2500, true},  // half of 5000, 2500 fewer
		{2400, false}, // the peak is now 2500
		{1200, true},  // half of 2500, 1300 fewer
		{100, true},   // 1100 fewer, under half
		{0, false},    // 100 fewer: too few to matter
		{800, false},
		{0, false}, // half, but only 800 fewer
	}
	for i, s := range steps {
		if got := m.observe(s.sessions); got != s.release {
			t.Fatalf("step %d (%d sessions, peak %d): release %v, want %v", i, s.sessions, m.peak, got, s.release)
		}
	}
}
