package socketio

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/siobridge/siobridge/engineio"
)

// RecoveryOptions configure connection state recovery, as Socket.IO 4.6+ does it: a client
// whose connection drops and that comes back within MaxDisconnection gets its socket back
// (same id, rooms and data) and, before anything new, every stored packet it missed.
//
// A packet is stored when it is an event without ack id and not volatile, broadcast through
// the namespace: a broadcast, or Socket.Emit (which is broadcast to the socket's own room
// while recovery is on). Each stored event carries its offset as its last argument.
type RecoveryOptions struct {
	// MaxDisconnection is how long the session of a disconnected socket, and the packets it
	// may have missed, are kept. 0: recovery off (the default, as in Node).
	MaxDisconnection time.Duration
	// MaxPackets bounds the packets kept per namespace; the oldest go first. A client whose
	// missed packets were dropped gets a fresh session. Default 10000.
	MaxPackets int
	// MaxBytes bounds the size of the packets kept per namespace (text and attachments), in
	// bytes; the oldest go first. Default 64 MiB.
	MaxBytes int
	// MaxSessions bounds the disconnected sessions kept per namespace; a socket that
	// disconnects while the store is full cannot be recovered. Default 100000.
	MaxSessions int
}

// The defaults of RecoveryOptions.
const (
	defaultRecoveryPackets  = 10000
	defaultRecoveryBytes    = 64 << 20
	defaultRecoverySessions = 100000
)

func (o *RecoveryOptions) setDefaults() {
	if o.MaxDisconnection <= 0 {
		return
	}
	if o.MaxPackets <= 0 {
		o.MaxPackets = defaultRecoveryPackets
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = defaultRecoveryBytes
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = defaultRecoverySessions
	}
}

// recoverableReasons are the disconnect reasons after which a socket's session is kept: the
// connection was lost or ended by the server, not left on purpose by either side.
var recoverableReasons = map[string]bool{
	engineio.ReasonTransportError: true,
	engineio.ReasonTransportClose: true,
	engineio.ReasonForcedClose:    true,
	engineio.ReasonPingTimeout:    true,
	engineio.ReasonServerShutdown: true,
}

// Session is what connection state recovery keeps of a socket that disconnected.
type Session struct {
	// SID is the socket id, which the recovered socket keeps.
	SID string
	// PID is the private session id the client presents to recover; only its client knows it.
	PID string
	// Rooms are the socket's rooms when it disconnected, its own id room included.
	Rooms []string
	// Data is the socket's data when it disconnected.
	Data any
	// DisconnectedAt is when it disconnected; a store sets it when zero.
	DisconnectedAt time.Time
}

// SessionStore keeps the sessions of disconnected sockets, and the packets they miss, for
// connection state recovery. With [Options].Recovery set, a namespace without a [Cluster]
// engine keeps them in memory; one whose engine implements SessionStore (the optional part of
// an engine that recovers sessions across nodes) uses the engine's, and one whose engine does
// not has no recovery.
//
// The store must put an offset on every event it stores (see [RecoveryOptions]) and deliver
// the stored packets to each socket in the order of their offsets. An engine that is one
// stores what its Broadcast sends: for each event without ack id and not volatile, it appends
// the offset as the event's last argument, encodes the packet once with [EncodeMessages] and
// queues it on this node's sockets with [Local.Enqueue], under the lock its Restore.Resume
// takes.
type SessionStore interface {
	// PersistSession keeps the session of a socket that disconnected for a reason its client
	// may recover from.
	PersistSession(sess Session)
	// RestoreSession takes the session pid out of the store (a session is restored once) and
	// starts collecting what its socket missed after offset. It returns false when the
	// session is unknown or expired, or when packets after offset are no longer stored.
	RestoreSession(pid, offset string) (Restore, bool)
	// Sessions is how many sessions the store keeps now (expired ones included until they
	// are swept): a dynamic namespace is not removed while its store keeps any.
	Sessions() int
}

// Restore is a session being restored: out of its store, and collecting the packets stored
// for its rooms meanwhile, while the namespace's authorizer decides. Exactly one of Resume
// and Cancel must be called.
type Restore interface {
	// Session is the session being restored.
	Session() Session
	// Resume calls fn with the packets the socket missed, in order, each as its encoded
	// Engine.IO messages. complete is false when more packets were stored meanwhile than the
	// store keeps (missed is then nil: the client must be told it was not recovered). fn runs
	// under the store's lock, so that packets stored later reach the socket after these: fn
	// must put the socket into its rooms, queue its messages with
	// [engineio.Session.Enqueue] (never Send, whose close could re-enter the store) and not
	// block.
	Resume(fn func(missed [][]*engineio.Message, complete bool))
	// Cancel ends a restore whose client was refused or has gone: the session is dropped.
	Cancel()
}

// splitRecoveryAuth takes the recovery fields "pid" and "offset" out of a CONNECT payload: the
// rest is the auth that handlers and webhooks see. auth is returned as is when it has neither.
func splitRecoveryAuth(data json.RawMessage) (auth json.RawMessage, pid, offset string) {
	if !bytes.Contains(data, []byte(`"pid"`)) && !bytes.Contains(data, []byte(`"offset"`)) {
		return data, "", ""
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return data, "", ""
	}
	_ = json.Unmarshal(fields["pid"], &pid)
	_ = json.Unmarshal(fields["offset"], &offset)
	delete(fields, "pid")
	delete(fields, "offset")
	// Without HTML escaping: the rest of the auth reads as the client wrote it.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(fields); err != nil {
		return data, "", ""
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), pid, offset
}

// storable reports whether a broadcast is kept for recovery: events without ack id (an ack
// callback cannot outlive its connection) and not volatile (which may be lost anyway).
func storable(p *Packet, opts BroadcastOptions) bool {
	return (p.Type == PacketEvent || p.Type == PacketBinaryEvent) && !p.HasID && !opts.Volatile
}

// appendOffset returns the JSON array data with offset added as its last element.
func appendOffset(data json.RawMessage, offset string) json.RawMessage {
	end := bytes.LastIndexByte(data, ']')
	if end < 0 {
		return data
	}
	out := make([]byte, 0, len(data)+len(offset)+3)
	out = append(out, data[:end]...)
	if len(bytes.TrimSpace(data[1:end])) > 0 {
		out = append(out, ',')
	}
	out = append(out, '"')
	out = append(out, offset...)
	out = append(out, '"', ']')
	return out
}

// storedPacket is one stored event, encoded once with its offset.
type storedPacket struct {
	seq    uint64
	at     time.Time
	rooms  []string
	except []string
	msgs   []*engineio.Message
	size   int
}

// includes reports whether a socket in rooms would have received a packet sent to
// (to, except): the namespace's selection, replayed against the rooms the socket had.
func includes(rooms, to, except []string) bool {
	for _, r := range rooms {
		if slices.Contains(except, r) {
			return false
		}
	}
	if len(to) == 0 {
		return true
	}
	for _, r := range rooms {
		if slices.Contains(to, r) {
			return true
		}
	}
	return false
}

// recoveryLog is a namespace's own [SessionStore], when it has no cluster engine: a bounded
// log of stored packets and the sessions of disconnected sockets. Its lock is also held while
// a stored packet is queued on its receivers, so every socket gets stored packets in offset
// order.
type recoveryLog struct {
	opts      RecoveryOptions
	namespace string
	logger    *slog.Logger
	epoch     string           // this log's offset prefix: offsets from elsewhere never match
	now       func() time.Time // time.Now; tests move it

	mu       sync.Mutex
	seq      uint64          // offset of the last packet stored
	pkts     []*storedPacket // pkts[head:] are stored, oldest first, offsets consecutive
	head     int
	bytes    int
	sessions map[string]Session // by pid
	restores map[*memoryRestore]struct{}
}

func newRecoveryLog(opts RecoveryOptions, namespace string, logger *slog.Logger) *recoveryLog {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &recoveryLog{
		opts:      opts,
		namespace: namespace,
		logger:    logger,
		epoch:     base64.RawURLEncoding.EncodeToString(b[:]),
		now:       time.Now,
		sessions:  make(map[string]Session),
		restores:  make(map[*memoryRestore]struct{}),
	}
}

func (l *recoveryLog) offset(seq uint64) string {
	return l.epoch + "-" + strconv.FormatUint(seq, 36)
}

// parseOffset returns the sequence number of one of this log's offsets.
func (l *recoveryLog) parseOffset(offset string) (uint64, bool) {
	rest, ok := strings.CutPrefix(offset, l.epoch+"-")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 36, 64)
	return seq, err == nil
}

// store adds a packet, with mu held: it is numbered, encoded with its offset, added to the
// restores in progress it concerns, and the oldest packets go beyond the bounds. It returns
// the messages to queue on the receivers.
func (l *recoveryLog) store(p *Packet, opts BroadcastOptions) []*engineio.Message {
	l.seq++
	q := *p
	q.Data = appendOffset(p.Data, l.offset(l.seq))
	msgs := EncodeMessages(&q)
	sp := &storedPacket{
		seq:    l.seq,
		at:     l.now(),
		rooms:  slices.Clone(opts.Rooms),
		except: slices.Clone(opts.Except),
		msgs:   msgs,
	}
	for _, m := range msgs {
		sp.size += m.Len()
	}
	l.pkts = append(l.pkts, sp)
	l.bytes += sp.size
	for len(l.pkts)-l.head > l.opts.MaxPackets || l.bytes > l.opts.MaxBytes {
		l.dropOldest()
	}
	for r := range l.restores {
		if r.overflow || !includes(r.sess.Rooms, sp.rooms, sp.except) {
			continue
		}
		if len(r.missed) >= l.opts.MaxPackets {
			r.overflow, r.missed = true, nil
			continue
		}
		r.missed = append(r.missed, msgs)
	}
	return msgs
}

func (l *recoveryLog) dropOldest() {
	l.bytes -= l.pkts[l.head].size
	l.pkts[l.head] = nil
	l.head++
	// Compact once the dropped half dominates, so the slice does not grow without bound.
	if l.head >= 1024 && l.head*2 >= len(l.pkts) {
		n := copy(l.pkts, l.pkts[l.head:])
		clear(l.pkts[n:])
		l.pkts = l.pkts[:n]
		l.head = 0
	}
}

// sweep drops the sessions and packets older than the window.
func (l *recoveryLog) sweep() {
	l.mu.Lock()
	defer l.mu.Unlock()
	threshold := l.now().Add(-l.opts.MaxDisconnection)
	for pid, s := range l.sessions {
		if s.DisconnectedAt.Before(threshold) {
			delete(l.sessions, pid)
		}
	}
	for l.head < len(l.pkts) && l.pkts[l.head].at.Before(threshold) {
		l.dropOldest()
	}
}

func (l *recoveryLog) persist(sess Session) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.sessions) >= l.opts.MaxSessions {
		return false
	}
	if sess.DisconnectedAt.IsZero() {
		sess.DisconnectedAt = l.now()
	}
	l.sessions[sess.PID] = sess
	return true
}

func (l *recoveryLog) restore(pid, offset string) (*memoryRestore, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sess, ok := l.sessions[pid]
	if !ok {
		return nil, false
	}
	delete(l.sessions, pid)
	if l.now().Sub(sess.DisconnectedAt) > l.opts.MaxDisconnection {
		return nil, false
	}
	seq, ok := l.parseOffset(offset)
	// Offsets are consecutive, so every packet after seq is still stored when the oldest one
	// stored comes right after it or earlier (the packet at seq itself may be gone).
	first := l.seq + 1 - uint64(len(l.pkts)-l.head)
	if !ok || seq > l.seq || seq+1 < first {
		return nil, false
	}
	r := &memoryRestore{log: l, sess: sess}
	for _, sp := range l.pkts[l.head+int(seq+1-first):] {
		if includes(sess.Rooms, sp.rooms, sp.except) {
			r.missed = append(r.missed, sp.msgs)
		}
	}
	l.restores[r] = struct{}{}
	return r, true
}

// memoryRestore is a [Restore] of a recoveryLog.
type memoryRestore struct {
	log  *recoveryLog
	sess Session

	// With log.mu held:
	missed   [][]*engineio.Message
	overflow bool
}

// Session implements [Restore].
func (r *memoryRestore) Session() Session { return r.sess }

// Resume implements [Restore].
func (r *memoryRestore) Resume(fn func(missed [][]*engineio.Message, complete bool)) {
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	delete(r.log.restores, r)
	fn(r.missed, !r.overflow)
	r.missed = nil
}

// Cancel implements [Restore].
func (r *memoryRestore) Cancel() {
	r.log.mu.Lock()
	delete(r.log.restores, r)
	r.missed = nil
	r.log.mu.Unlock()
}

// PersistSession implements [SessionStore].
func (l *recoveryLog) PersistSession(sess Session) {
	if !l.persist(sess) {
		l.logger.Warn("socketio: session not kept for recovery: the store is full",
			"namespace", l.namespace, "socket", sess.SID, "limit", l.opts.MaxSessions)
	}
}

// RestoreSession implements [SessionStore].
func (l *recoveryLog) RestoreSession(pid, offset string) (Restore, bool) {
	r, ok := l.restore(pid, offset)
	if !ok {
		return nil, false
	}
	return r, true
}

// Sessions implements [SessionStore].
func (l *recoveryLog) Sessions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sessions)
}

// sweepRecovery drops what is older than the recovery window from every namespace's store;
// the server calls it from one shared ticker. A dynamic namespace kept only for its sessions
// goes once they have.
func (s *Server) sweepRecovery() {
	for _, ns := range s.Namespaces() {
		if ns.log != nil {
			ns.log.sweep()
		}
		if ns.dynamic.Load() && ns.holds.Load() == 0 {
			s.removeIdle(ns)
		}
	}
}

// runSweeper sweeps the recovery stores until done is closed.
func (s *Server) runSweeper(every time.Duration, done <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.sweepRecovery()
		case <-done:
			return
		}
	}
}
