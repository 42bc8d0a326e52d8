package spool

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siobridge/siobridge/internal/testkit"
)

// openSpool opens a spool in dir, closed when the test ends (a second Close is harmless).
func openSpool(t testing.TB, opts Options) *Spool {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func spoolBody(key string, seq int) []byte {
	return fmt.Appendf(nil, `{"key":%q,"seq":%d,"pad":"%s"}`, key, seq, strings.Repeat("x", seq%7*10))
}

// replayLines returns what a reopened spool hands the next deliverer, as key/id/kind/body
// lines.
func replayLines(s *Spool) []string {
	var out []string
	for _, e := range s.TakeReplay() {
		out = append(out, e.Key+" "+e.ID+" "+e.Kind+" "+string(e.Body))
	}
	return out
}

func TestSpoolReplaysPendingInOrder(t *testing.T) {
	for _, policy := range []FsyncPolicy{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, Options{Dir: dir, Fsync: policy, SegmentBytes: 1024, FsyncInterval: time.Millisecond})
			var want []string
			keys := []string{"a", "b", "c"}
			for i := range 60 {
				key := keys[i%3]
				rec := Record{Key: key, ID: fmt.Sprintf("id-%02d", i), Kind: "event", Body: spoolBody(key, i)}
				seq, writes, err := s.Append(rec)
				if err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
				if err := s.Sync(writes); err != nil {
					t.Fatalf("sync: %v", err)
				}
				if i%4 == 0 {
					s.MarkDone(seq) // settled: not replayed
					continue
				}
				want = append(want, key+" "+rec.ID+" event "+string(rec.Body))
			}
			if s.Segments() < 3 {
				t.Fatalf("%d segments, want several of 1 KiB", s.Segments())
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s2 := openSpool(t, Options{Dir: dir, Fsync: policy})
			if got := replayLines(s2); !slices.Equal(got, want) {
				t.Errorf("replayed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if n := s2.Pending(); n != len(want) {
				t.Errorf("Pending = %d, want %d", n, len(want))
			}
		})
	}
}

func TestSpoolCompaction(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, Options{Dir: dir, SegmentBytes: 2048})
	stuck, _, err := s.Append(Record{Key: "stuck", ID: "stuck-1", Kind: "event", Body: []byte(`{"stuck":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		seq, _, err := s.Append(Record{Key: "k", ID: fmt.Sprint(i), Kind: "event", Body: spoolBody("k", i)})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		s.MarkDone(seq)
	}
	// Everything but one delivery is settled: the segments behind the first were removed as
	// they emptied, and the first was compacted, its one pending record moved forward.
	if n := s.Segments(); n > 2 {
		t.Errorf("%d segments after 500 settled deliveries, want at most 2", n)
	}
	if b := s.Bytes(); b > 2*2048+512 {
		t.Errorf("spool holds %d bytes, want at most two segments' worth", b)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	var onDisk int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		onDisk += fi.Size()
	}
	if onDisk != s.Bytes() {
		t.Errorf("segment files hold %d bytes, Bytes() says %d", onDisk, s.Bytes())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSpool(t, Options{Dir: dir, SegmentBytes: 2048})
	got := s2.TakeReplay()
	if len(got) != 1 || got[0].Seq != stuck || got[0].ID != "stuck-1" || string(got[0].Body) != `{"stuck":true}` {
		t.Fatalf("replayed %d deliveries (%v), want only the stuck one", len(got), got)
	}
	s2.MarkDone(stuck)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openSpool(t, Options{Dir: dir})
	if n := len(s3.TakeReplay()); n != 0 {
		t.Errorf("%d deliveries replayed after all were settled", n)
	}
	if n := s3.Segments(); n != 1 {
		t.Errorf("%d segments once everything is settled, want 1 (the new active one)", n)
	}
}

// TestSpoolFullCompacts fills a spool whose oldest segment is mostly pending, so that only a
// full spool compacts it: the append that found the spool full is then written, and both it
// and the moved delivery read back intact.
func TestSpoolFullCompacts(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, MaxBytes: 4000, SegmentBytes: 1000}
	s := openSpool(t, opts)
	stuckBody := bytes.Repeat([]byte("s"), 600)
	stuck, _, err := s.Append(Record{Key: "stuck", ID: "stuck", Kind: "event", Body: stuckBody})
	if err != nil {
		t.Fatal(err)
	}
	// Settled deliveries behind it, until the spool is nearly full: they cannot be removed
	// while the first segment, more than half pending, stays.
	for i := 0; s.Bytes() < 3500; i++ {
		if i > 100 {
			t.Fatalf("spool at %d bytes after 100 appends", s.Bytes())
		}
		seq, _, err := s.Append(Record{Key: "k", ID: fmt.Sprint("done", i), Kind: "event", Body: bytes.Repeat([]byte("d"), 200)})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		s.MarkDone(seq)
	}
	segsBefore := s.Segments()
	lastBody := bytes.Repeat([]byte("L"), 700)
	if _, _, err := s.Append(Record{Key: "k", ID: "last", Kind: "event", Body: lastBody}); err != nil {
		t.Fatalf("append into a full spool that compaction can free: %v", err)
	}
	if s.Segments() >= segsBefore {
		t.Errorf("%d segments after compacting, %d before", s.Segments(), segsBefore)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := openSpool(t, opts).TakeReplay()
	if len(got) != 2 || got[0].Seq != stuck || got[0].ID != "stuck" || !bytes.Equal(got[0].Body, stuckBody) ||
		got[1].ID != "last" || !bytes.Equal(got[1].Body, lastBody) {
		t.Fatalf("replayed %d deliveries, want the stuck one and the last, intact", len(got))
	}
}

// TestSpoolTornRecords damages the log as a crash or a bad disk would: each case keeps the
// records before the damage, logs a warning, and the spool goes on working.
func TestSpoolTornRecords(t *testing.T) {
	cases := []struct {
		name   string
		damage func(data []byte, offsets []int) []byte // offsets: where each record starts
		want   int                                     // records still read
	}{
		{"tail cut mid-record", func(d []byte, off []int) []byte { return d[:off[4]+5] }, 4},
		{"tail cut mid-head", func(d []byte, off []int) []byte { return d[:off[4]+3] }, 4},
		{"flipped body byte", func(d []byte, off []int) []byte { d[off[2]+20] ^= 0x40; return d }, 2},
		{"huge length", func(d []byte, off []int) []byte { copy(d[off[3]:], []byte{0xff, 0xff, 0xff, 0x7f}); return d }, 3},
		{"zeroed tail", func(d []byte, off []int) []byte { clear(d[off[1]:]); return d }, 1},
		{"header only", func(d []byte, off []int) []byte { return d[:len(spoolMagic)] }, 0},
		{"empty file", func(d []byte, off []int) []byte { return d[:0] }, 0},
		{"not a segment", func(d []byte, off []int) []byte { return []byte("hello, world") }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, Options{Dir: dir})
			offsets := []int{len(spoolMagic)}
			for i := range 5 {
				rec := Record{Key: "k", ID: fmt.Sprint("id", i), Kind: "event", Body: spoolBody("k", i+10)}
				if _, _, err := s.Append(rec); err != nil {
					t.Fatal(err)
				}
				offsets = append(offsets, offsets[i]+spoolRecordHead+len(encodeAppend(nil, uint64(i+1), &rec)))
			}
			path := s.segs[0].path
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) != offsets[5] {
				t.Fatalf("segment of %d bytes, want %d", len(data), offsets[5])
			}
			if err := os.WriteFile(path, tc.damage(data, offsets), 0o600); err != nil {
				t.Fatal(err)
			}

			var log testkit.Lines
			s2 := openSpool(t, Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			got := s2.TakeReplay()
			if len(got) != tc.want {
				t.Fatalf("%d records read back, want %d", len(got), tc.want)
			}
			for i, e := range got {
				if e.ID != fmt.Sprint("id", i) || !bytes.Equal(e.Body, spoolBody("k", i+10)) {
					t.Errorf("record %d read back as %s %s", i, e.ID, e.Body)
				}
			}
			if tc.name != "empty file" && tc.name != "header only" && !strings.Contains(log.String(), "skipping the unreadable end of a segment") {
				t.Errorf("no warning logged:\n%s", log.String())
			}
			// The spool goes on: a new delivery is kept after the survivors.
			if _, _, err := s2.Append(Record{Key: "k", ID: "after", Kind: "event", Body: []byte("{}")}); err != nil {
				t.Fatal(err)
			}
			if err := s2.Close(); err != nil {
				t.Fatal(err)
			}
			s3 := openSpool(t, Options{Dir: dir})
			again := s3.TakeReplay()
			if len(again) != tc.want+1 || again[len(again)-1].ID != "after" {
				t.Errorf("after reopening: %d records, want %d ending with the new one", len(again), tc.want+1)
			}
		})
	}
}

func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	openSpool(t, Options{Dir: dir})
	_, err := Open(Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second OpenSpool of one directory: %v, want it refused", err)
	}
}
