package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/siobridge/siobridge/internal/group"
)

// FsyncPolicy says when the spool asks the kernel to put what it wrote on the disk.
//
// Every record is written to its segment file (a write(2)) before [Spool.Append]
// returns, so it survives the process being killed, kill -9 included: it is in the kernel's
// page cache. fsync only matters when the machine itself stops (power loss, kernel panic).
type FsyncPolicy string

const (
	// FsyncAlways makes the writer wait, with [Spool.Sync], until its record is on the disk. Concurrent enqueues
	// share one fsync (group commit). Nothing accepted is lost to a power loss; each
	// event costs its client's reader an fsync's latency.
	FsyncAlways FsyncPolicy = "always"
	// FsyncInterval fsyncs what was written, if anything, every FsyncInterval (default 1s),
	// on one goroutine. A power loss may lose the webhooks accepted in the last interval.
	FsyncInterval FsyncPolicy = "interval"
	// FsyncNever leaves writing back to the kernel (usually within 30s on Linux).
	FsyncNever FsyncPolicy = "never"
)

// Errors of [Spool.Append].
var (
	// ErrFull: the record would take the spool past its MaxBytes.
	ErrFull = errors.New("webhook: spool full")
	// ErrClosed: the spool is closed.
	ErrClosed = errors.New("webhook: spool closed")
)

// Record is one webhook the spool keeps: the key it is delivered in order under (a
// socket), its delivery id and kind, and its body.
type Record struct {
	Key, ID, Kind string
	Body          []byte
}

// Entry is a record found in the spool, not yet marked done, with its sequence number.
type Entry struct {
	Seq uint64
	Record
}

// Options configure a [Spool]. The zero value of each field means its default.
type Options struct {
	// Dir is the spool's directory, made (0700) if missing. One process at a time may use
	// it: [Open] fails while another holds it.
	Dir string
	// MaxBytes bounds the segment files' total size, in bytes; an append that would pass it
	// fails with [ErrFull]. Compaction may pass it by up to one segment while it moves
	// live records. Default 1 GiB.
	MaxBytes int64
	// SegmentBytes is the size past which the spool starts a new segment file. Default
	// MaxBytes/16, between 64 KiB and 64 MiB.
	SegmentBytes int64
	// Fsync is when records are fsynced. Default FsyncInterval.
	Fsync FsyncPolicy
	// FsyncInterval is the period of FsyncInterval. Default 1s.
	FsyncInterval time.Duration
	// Logger receives the spool's warnings (corrupt records skipped, write errors). Default
	// slog.Default().
	Logger *slog.Logger
}

// Spool is an append-only log of the webhooks a deliverer has accepted and not yet settled,
// so that they survive a restart: the deliverer appends each before it counts as accepted
// and marks it done once settled, and the next run takes what is left ([Spool.TakeReplay]).
//
// The log is a series of segment files, <n>.seg, each a header and then records: an
// "append" record (a delivery: its sequence number, key, id, kind and body) when a webhook is
// accepted, a "done" record (a sequence number) when it is settled. Each record is framed by
// its length and a CRC-32C, so that a record torn by a crash is detected and skipped. A
// segment is removed once none of its deliveries is pending; the oldest segment, once at least
// half of it is settled, is compacted: its pending deliveries are written again at the end
// of the log, with their sequence numbers, and it is removed. [Open] reads the log back
// and hands the pending deliveries, in sequence order, to the next deliverer.
//
// Its methods are safe for concurrent use.
type Spool struct {
	opts Options
	log  *slog.Logger
	lock *os.File // the directory's lock file

	mu      sync.Mutex
	segs    []*segment // oldest first; the last is the active one
	active  *os.File   // the last segment's file, open for appending; nil after a write error
	total   int64      // the segments' total size
	nextSeq uint64
	nextSeg uint64
	live    map[uint64]*spoolEntry // the deliveries not settled, by sequence number
	replay  []*spoolEntry          // found by Open, until a deliverer takes them
	writes  uint64                 // records written so far
	buf     []byte
	closed  bool
	warned  bool // a write error has been logged

	syncMu sync.Mutex // one fsync at a time
	synced uint64     // writes known to be on the disk; under syncMu

	stop   chan struct{} // ends the interval fsync goroutine
	fsyncs group.Group   // that goroutine
}

type segment struct {
	id        uint64
	path      string
	size      int64
	liveBytes int64
	entries   map[uint64]*spoolEntry // the live deliveries whose copy is in this segment
}

type spoolEntry struct {
	seq  uint64
	rec  Record
	seg  *segment
	size int64 // the record's size in seg
}

const (
	spoolMagic      = "SIOSPL1\n" // the first bytes of every segment file
	spoolRecordHead = 8           // length (4 bytes) and CRC-32C (4 bytes), little-endian
	// maxSpoolRecord bounds a record's length, so that a corrupt length is not believed.
	maxSpoolRecord = 512 << 20
	recAppend      = 'A'
	recDone        = 'D'
	segSuffix      = ".seg"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Open opens (or creates) the spool in opts.Dir and reads back the deliveries that were
// accepted and not settled, for [Spool.TakeReplay]. Records that
// cannot be read (a torn write at a crash, a corrupt segment) are skipped with a warning; only
// a directory that cannot be used is an error.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("webhook: spool: no directory given")
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = min(max(opts.MaxBytes/16, 64<<10), 64<<20)
	}
	if opts.Fsync == "" {
		opts.Fsync = FsyncInterval
	}
	switch opts.Fsync {
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		return nil, fmt.Errorf("webhook: spool: fsync must be %q, %q or %q, got %q", FsyncAlways, FsyncInterval, FsyncNever, opts.Fsync)
	}
	if opts.FsyncInterval <= 0 {
		opts.FsyncInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("webhook: spool: %w", err)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{opts: opts, log: opts.Logger, lock: lock, live: make(map[uint64]*spoolEntry), nextSeq: 1}
	if err := s.load(); err != nil {
		lock.Close()
		return nil, err
	}
	s.mu.Lock()
	err = s.rotate()
	if err == nil {
		s.compact(false)
	}
	s.mu.Unlock()
	if err != nil {
		lock.Close()
		return nil, err
	}
	if opts.Fsync == FsyncInterval {
		s.stop = make(chan struct{})
		s.fsyncs.Go(func() { s.syncEvery(opts.FsyncInterval) })
	}
	return s, nil
}

// load reads every segment, oldest first, and keeps the deliveries not marked done.
func (s *Spool) load() error {
	names, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("webhook: spool: %w", err)
	}
	var ids []uint64
	for _, de := range names {
		name, ok := strings.CutSuffix(de.Name(), segSuffix)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		id, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	all := make(map[uint64]*spoolEntry)
	settled := make(map[uint64]bool)
	for _, id := range ids {
		seg := &segment{id: id, path: s.segPath(id), entries: make(map[uint64]*spoolEntry)}
		s.nextSeg = id + 1
		f, err := os.Open(seg.path)
		if err != nil {
			return fmt.Errorf("webhook: spool: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("webhook: spool: %w", err)
		}
		seg.size = fi.Size()
		end, err := scanSegment(bufio.NewReaderSize(f, 64<<10), seg.size, func(r spoolRecord, size int64) {
			s.nextSeq = max(s.nextSeq, r.seq+1)
			if r.typ == recDone {
				settled[r.seq] = true
				return
			}
			// A later copy (written by compaction) replaces an earlier one.
			all[r.seq] = &spoolEntry{seq: r.seq, rec: Record{Key: r.key, ID: r.id, Kind: r.kind, Body: r.body}, seg: seg, size: size}
		})
		f.Close()
		if err != nil {
			s.log.Warn("webhook: spool: skipping the unreadable end of a segment (a write torn by a crash, or a damaged file)",
				"file", seg.path, "offset", end, "size", seg.size, "err", err)
		}
		s.segs = append(s.segs, seg)
		s.total += seg.size
	}
	for seq, e := range all {
		if settled[seq] {
			continue
		}
		s.live[seq] = e
		e.seg.entries[seq] = e
		e.seg.liveBytes += e.size
		s.replay = append(s.replay, e)
	}
	slices.SortFunc(s.replay, func(a, b *spoolEntry) int { return cmpUint(a.seq, b.seq) })
	if len(s.replay) > 0 {
		s.log.Info("webhook: spool: webhooks left undelivered by the last run will be delivered", "count", len(s.replay), "dir", s.opts.Dir)
	}
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Spool) segPath(id uint64) string {
	return filepath.Join(s.opts.Dir, fmt.Sprintf("%016x%s", id, segSuffix))
}

// TakeReplay hands over, once, the records Open found not marked done, in the order they
// were appended.
func (s *Spool) TakeReplay() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, len(s.replay))
	for i, e := range s.replay {
		out[i] = Entry{Seq: e.seq, Record: e.rec}
	}
	s.replay = nil
	return out
}

// Fsync is the spool's fsync policy: with FsyncAlways, a writer calls [Spool.Sync] before it
// counts its record as accepted.
func (s *Spool) Fsync() FsyncPolicy { return s.opts.Fsync }

// Bytes is the segment files' total size.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Pending is the number of deliveries in the spool not yet settled.
func (s *Spool) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// Segments is the number of segment files.
func (s *Spool) Segments() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.segs)
}

// Append records rec and returns its sequence number, for [Spool.MarkDone], and the count of
// writes to wait for with [Spool.Sync]. It fails with [ErrFull] when rec would take the spool
// past MaxBytes, [ErrClosed] after Close, or the error of a write.
func (s *Spool) Append(rec Record) (seq, writes uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, 0, ErrClosed
	}
	seq = s.nextSeq
	payload := encodeAppend(s.payloadBuf(), seq, &rec)
	size := int64(spoolRecordHead + len(payload))
	if s.total+size > s.opts.MaxBytes {
		s.compact(true)
		if s.total+size > s.opts.MaxBytes {
			return 0, 0, fmt.Errorf("%w (%d of spool_max_bytes %d bytes in use)", ErrFull, s.total, s.opts.MaxBytes)
		}
		payload = encodeAppend(s.payloadBuf(), seq, &rec) // compaction reused the buffer
	}
	seg, err := s.write(payload)
	if err != nil {
		return 0, 0, err
	}
	s.nextSeq++
	s.addLive(&spoolEntry{seq: seq, rec: rec, seg: seg, size: size})
	return seq, s.writes, nil
}

func (s *Spool) addLive(e *spoolEntry) {
	s.live[e.seq] = e
	e.seg.entries[e.seq] = e
	e.seg.liveBytes += e.size
}

// payloadBuf returns the reusable encoding buffer, emptied, leaving room for the record's
// head in front.
func (s *Spool) payloadBuf() []byte {
	if cap(s.buf) > 1<<20 {
		s.buf = nil // a large body's buffer is not kept
	}
	if s.buf == nil {
		s.buf = make([]byte, 0, 4096)
	}
	return s.buf[:spoolRecordHead]
}

// MarkDone records that the delivery seq is settled, and removes or compacts the segments
// that no longer hold anything pending.
func (s *Spool) MarkDone(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.live[seq]
	if e == nil || s.closed {
		return
	}
	payload := binary.AppendUvarint(append(s.payloadBuf(), recDone), seq)
	if _, err := s.write(payload); err != nil {
		return // it stays pending: delivered again after a restart, at least once
	}
	delete(s.live, seq)
	delete(e.seg.entries, seq)
	e.seg.liveBytes -= e.size
	s.compact(false)
}

// write frames payload (which has room for the head in front) and appends it to the active
// segment, starting a new one when the active one is full or broken.
func (s *Spool) write(rec []byte) (*segment, error) {
	payload := rec[spoolRecordHead:]
	binary.LittleEndian.PutUint32(rec[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:8], crc32.Checksum(payload, crcTable))
	s.buf = rec[:0]
	seg := s.segs[len(s.segs)-1]
	if s.active == nil || (seg.size > int64(len(spoolMagic)) && seg.size+int64(len(rec)) > s.opts.SegmentBytes) {
		if err := s.rotate(); err != nil {
			return nil, s.writeFailed(err)
		}
		seg = s.segs[len(s.segs)-1]
	}
	n, err := s.active.Write(rec)
	seg.size += int64(n)
	s.total += int64(n)
	if err != nil {
		// The segment may now end with a torn record, which would hide the records after
		// it: the next write starts a new segment.
		s.active.Close()
		s.active = nil
		return nil, s.writeFailed(err)
	}
	s.writes++
	return seg, nil
}

func (s *Spool) writeFailed(err error) error {
	err = fmt.Errorf("webhook: spool: %w", err)
	if !s.warned {
		s.warned = true
		s.log.Error("webhook: spool: write failed; webhooks are refused until the spool can be written again", "err", err)
	}
	return err
}

// rotate closes the active segment (fsyncing it unless the policy is never) and starts the
// next one.
func (s *Spool) rotate() error {
	if s.active != nil {
		if s.opts.Fsync != FsyncNever {
			_ = s.active.Sync()
		}
		s.active.Close()
		s.active = nil
	}
	seg := &segment{id: s.nextSeg, path: s.segPath(s.nextSeg), entries: make(map[uint64]*spoolEntry)}
	f, err := os.OpenFile(seg.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(spoolMagic); err != nil {
		f.Close()
		_ = os.Remove(seg.path)
		return err
	}
	s.nextSeg++
	s.warned = false
	seg.size = int64(len(spoolMagic))
	s.total += seg.size
	s.segs = append(s.segs, seg)
	s.active = f
	if s.opts.Fsync != FsyncNever {
		syncDir(s.opts.Dir)
	}
	return nil
}

// compact removes the oldest segments while they hold nothing pending, and moves the pending
// deliveries of the oldest one to the end of the log when at least half of it is settled (or,
// when full, any of it). Only the oldest segment is ever removed: a later one may hold the
// done records of deliveries written in an earlier one.
func (s *Spool) compact(full bool) {
	for range len(s.segs) {
		if len(s.segs) < 2 {
			return
		}
		old := s.segs[0]
		if old.liveBytes > 0 {
			if old.liveBytes*2 > old.size && (!full || old.liveBytes >= old.size-int64(len(spoolMagic))) {
				return
			}
			moving := make([]*spoolEntry, 0, len(old.entries))
			for _, e := range old.entries {
				moving = append(moving, e)
			}
			slices.SortFunc(moving, func(a, b *spoolEntry) int { return cmpUint(a.seq, b.seq) })
			for _, e := range moving {
				seg, err := s.write(encodeAppend(s.payloadBuf(), e.seq, &e.rec))
				if err != nil {
					return
				}
				delete(old.entries, e.seq)
				old.liveBytes -= e.size
				e.seg = seg
				seg.entries[e.seq] = e
				seg.liveBytes += e.size
			}
			// The copies must be on the disk before the originals go.
			if s.opts.Fsync != FsyncNever && s.active != nil {
				_ = s.active.Sync()
			}
		}
		if err := os.Remove(old.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("webhook: spool: cannot remove a settled segment", "file", old.path, "err", err)
			return
		}
		s.total -= old.size
		s.segs = s.segs[1:]
	}
}

// Sync returns once the first writes records are on the disk; under FsyncAlways, a writer
// calls it with what Append returned. Concurrent callers share one fsync.
func (s *Spool) Sync(writes uint64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= writes {
		return nil
	}
	s.mu.Lock()
	f, upTo := s.active, s.writes
	s.mu.Unlock()
	if f == nil {
		return nil // a write failed or the spool is closed; rotate and Close have synced
	}
	// rotate may close f meanwhile, after syncing it.
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("webhook: spool: fsync: %w", err)
	}
	s.synced = upTo
	return nil
}

func (s *Spool) syncEvery(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			w := s.writes
			s.mu.Unlock()
			if err := s.Sync(w); err != nil {
				s.log.Warn("webhook: spool: fsync failed", "err", err)
			}
		}
	}
}

// Close fsyncs and closes the active segment (unless the policy is never, in which case it
// only closes it) and releases the directory. The deliveries still pending stay in the
// spool for the next [Open]. Close the deliverer first.
func (s *Spool) Close() error {
	if s.stop != nil {
		close(s.stop)
		s.fsyncs.Wait()
		s.stop = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.active != nil {
		if s.opts.Fsync != FsyncNever {
			err = s.active.Sync()
		}
		if cerr := s.active.Close(); err == nil {
			err = cerr
		}
		s.active = nil
	}
	s.lock.Close()
	if err != nil {
		return fmt.Errorf("webhook: spool: %w", err)
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// ---- the record format ----

// spoolRecord is one decoded record.
type spoolRecord struct {
	typ  byte
	seq  uint64
	key  string
	id   string
	kind string
	body []byte
}

// encodeAppend appends an append record's payload to b: 'A', the sequence number (uvarint),
// key, id and kind (each a uvarint length and bytes), then the body (the rest).
func encodeAppend(b []byte, seq uint64, rec *Record) []byte {
	b = append(b, recAppend)
	b = binary.AppendUvarint(b, seq)
	for _, s := range []string{rec.Key, rec.ID, rec.Kind} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, rec.Body...)
}

var errBadRecord = errors.New("malformed record")

// decodeRecord decodes a record's payload; the body is a copy.
func decodeRecord(p []byte) (spoolRecord, error) {
	var r spoolRecord
	if len(p) == 0 {
		return r, errBadRecord
	}
	r.typ = p[0]
	p = p[1:]
	seq, n := uvarint(p)
	if n <= 0 || seq == 0 {
		return r, errBadRecord
	}
	r.seq = seq
	p = p[n:]
	switch r.typ {
	case recDone:
		if len(p) != 0 {
			return r, errBadRecord
		}
		return r, nil
	case recAppend:
	default:
		return r, errBadRecord
	}
	var fields [3]string
	for i := range fields {
		l, n := uvarint(p)
		if n <= 0 || l > uint64(len(p)-n) {
			return r, errBadRecord
		}
		fields[i] = string(p[n : n+int(l)])
		p = p[n+int(l):]
	}
	r.key, r.id, r.kind = fields[0], fields[1], fields[2]
	r.body = slices.Clone(p)
	if r.body == nil {
		r.body = []byte{}
	}
	return r, nil
}

// uvarint is binary.Uvarint refusing (n = 0) the longer than needed encodings that
// encodeAppend never writes.
func uvarint(p []byte) (uint64, int) {
	v, n := binary.Uvarint(p)
	if n > 0 && n != varintLen(v) {
		return 0, 0
	}
	return v, n
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// scanSegment reads a segment of size bytes from r and calls fn with each record and its
// framed size, in order. It stops at the first record that is torn, fails its checksum or
// does not decode, and returns its offset with an error saying what is wrong; nil when the
// segment was read to its end.
func scanSegment(r io.Reader, size int64, fn func(rec spoolRecord, size int64)) (int64, error) {
	head := make([]byte, len(spoolMagic))
	if _, err := io.ReadFull(r, head); err != nil {
		if size == 0 {
			return 0, nil // created, and the crash came before its header
		}
		return 0, fmt.Errorf("segment header: %w", err)
	}
	if string(head) != spoolMagic {
		return 0, fmt.Errorf("not a spool segment (header %q)", head)
	}
	off := int64(len(spoolMagic))
	var rh [spoolRecordHead]byte
	var payload []byte
	for off < size {
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			return off, fmt.Errorf("record head: %w", err)
		}
		l := int64(binary.LittleEndian.Uint32(rh[0:4]))
		if l > maxSpoolRecord || l > size-off-spoolRecordHead {
			return off, fmt.Errorf("record length %d past the end of the segment", l)
		}
		if int64(cap(payload)) < l {
			payload = make([]byte, l)
		}
		payload = payload[:l]
		if _, err := io.ReadFull(r, payload); err != nil {
			return off, fmt.Errorf("record: %w", err)
		}
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(rh[4:8]) {
			return off, errors.New("record checksum mismatch")
		}
		rec, err := decodeRecord(payload)
		if err != nil {
			return off, err
		}
		fn(rec, spoolRecordHead+l)
		off += spoolRecordHead + l
	}
	return off, nil
}
