//go:build linux

package engineio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"

	"github.com/siobridge/siobridge/engineio/internal/wsframe"
	"github.com/siobridge/siobridge/internal/group"
)

// epoller is the server's epoll loop (what Options.DisableWebSocketPoller and siobridge's
// settings call the poller): it reads the server's WebSockets and held connections without a
// goroutine per connection. One goroutine waits in epoll_wait for any of them to have
// something to read, and hands each that has to a reader goroutine, of which at most
// maxEpollReaders run at once and none while all is quiet. A reader reads what the socket has
// without blocking and gives it to the session's frame reader or to the held connection.
//
// Each socket is registered edge-triggered (EPOLLET): it reports when bytes come, not while
// they wait, and needs no system call between one event and the next. That a session is read
// by one goroutine at a time, so that its packets stay in order, is the connection's own
// turn (epollConn.turn): an event for a connection a reader has already is left to that
// reader, which reads again before it lets go.
//
// An event carries the registration's id, never a pointer: the table maps ids to
// registrations, and a socket is taken out of it, and off epoll, before it is closed, so an
// event that was already on its way for a closed socket (or for a new one that got its
// descriptor number) finds no registration, or its own, and never another session.
type epoller struct {
	g   *group.Group
	log *slog.Logger

	mu       sync.RWMutex
	started  bool
	stopping bool // close was called: the loop ends at its next wakeup
	closed   bool // epfd and wakefd are closed
	epfd     int
	// epf is epfd as an *os.File, which puts the epoll instance itself in the runtime's
	// netpoller: the loop waits for it to have events as a goroutine waits for a socket, parked,
	// never in a blocking epoll_wait that would hold a P (with GOMAXPROCS=1, the only one)
	// until the runtime's monitor takes it back.
	epf      *os.File
	erc      syscall.RawConn
	wakefd   int // an eventfd that close writes to wake epoll_wait
	conns    map[uint64]*epollConn
	nextID   uint64
	queue    []*epollConn // ready connections waiting for a reader
	readers  int          // reader goroutines running
	queueMu  sync.Mutex   // guards queue and readers
	stopOnce sync.Once
	// epollReaders keeps the readers' state (epollReader) between them.
	epollReaders sync.Pool
	// drained counts the turns that ended with their socket drained (for tests).
	drained atomic.Uint64
}

// epollConn is one connection registered with the epoller: a WebSocket (s and fr) or a held
// long-polling connection (hc). Every idle WebSocket keeps one: 160 bytes, a size class,
// with turn and hup sharing its last word.
type epollConn struct {
	// id is the registration's key in epoller.conns and its events' id: 0 until registered,
	// removedID once removed (guarded by epoller.mu).
	id uint64
	s  *Session
	hc *heldConn
	nc net.Conn
	rc syscall.RawConn
	fr wsframe.Reader
	// turn says whether a reader has the connection (turnIdle, turnBusy) and whether an event
	// came meanwhile (turnAgain), which that reader then reads before it lets go. Its atomic
	// operations also order successive readers for the race detector (fr is the reader's
	// alone).
	turn atomic.Uint32
	// hup is set once an event said the client shut its side or the connection broke: from
	// then on only a read that ends in the end of the stream or an error drains the socket.
	// The bytes before the end and the end itself may come as one edge, which a read that
	// takes the bytes would otherwise leave unreported.
	hup atomic.Bool
}

// removedID is the id of a registration taken off by remove, which register then leaves off.
const removedID = ^uint64(0)

const (
	turnIdle  = iota // no reader has the connection: the next event dispatches it
	turnBusy         // a reader has it
	turnAgain        // a reader has it, and an event came since it last read
)

// claim is the loop's, for an event of pc: it reports whether pc is to be dispatched (no
// reader has it), else leaves the event to the reader that has it.
func (pc *epollConn) claim() bool {
	for {
		switch t := pc.turn.Load(); t {
		case turnIdle:
			if pc.turn.CompareAndSwap(turnIdle, turnBusy) {
				return true
			}
		case turnBusy:
			if pc.turn.CompareAndSwap(turnBusy, turnAgain) {
				return false
			}
		default:
			return false
		}
	}
}

// release is the reader's, once it drained pc's socket: it lets go of pc, or reports false
// when an event came meanwhile and pc is to be read again (the reader keeps it).
func (pc *epollConn) release(p *epoller) bool {
	p.drained.Add(1)
	for {
		switch t := pc.turn.Load(); t {
		case turnBusy:
			if pc.turn.CompareAndSwap(turnBusy, turnIdle) {
				return true
			}
		default:
			if pc.turn.CompareAndSwap(turnAgain, turnBusy) {
				return false
			}
		}
	}
}

const (
	// maxEpollReaders bounds the reader goroutines of a server's epoller: connections ready
	// beyond it wait their turn. A reader also runs the session's handler for what it read,
	// so it is generous: a handler that blocks holds one.
	maxEpollReaders = 256
	// readsPerTurn bounds what a reader reads from one connection before the other ready ones
	// have their turn: readsPerTurn buffers.
	readsPerTurn = 16
	// epollEvents is the most events one epoll_wait returns.
	epollEvents = 128
	// wakeID is the id of the wakeup eventfd's events; connections' ids start at 1.
	wakeID = 0
)

var errEpollerClosed = errors.New("engineio: poller closed")

func newEpoller(g *group.Group, log *slog.Logger) *epoller {
	return &epoller{g: g, log: log, conns: make(map[uint64]*epollConn)}
}

// start creates the epoll instance and starts the loop, on the first registration; p.mu is
// held.
func (p *epoller) startLocked() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setEventID(&ev, wakeID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return fmt.Errorf("epoll: set non-blocking: %w", err)
	}
	epf := os.NewFile(uintptr(epfd), "epoll")
	erc, err := epf.SyscallConn()
	if err != nil {
		unix.Close(wakefd)
		epf.Close()
		return fmt.Errorf("epoll: %w", err)
	}
	p.epfd, p.epf, p.erc, p.wakefd, p.started = epfd, epf, erc, wakefd, true
	p.g.Go(p.loop)
	return nil
}

// The id of a registration rides in the event's 64-bit data, which x/sys/unix spells as the
// two 32-bit fields Fd and Pad.
func setEventID(ev *unix.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func eventID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// add registers the session's WebSocket, with fr holding what was read of it already. Once
// add returns, the epoller reads it until the session's closeConn takes it off. It fails when
// the epoller is closed or the socket cannot be registered; a socket closed meanwhile is not
// registered, and that is no error.
func (p *epoller) add(s *Session, nc net.Conn, fr wsframe.Reader) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	pc := &epollConn{s: s, nc: nc, rc: rc, fr: fr}
	// closeConn takes the registration off; once it has marked the connection closed, it is
	// not registered at all.
	s.mu.Lock()
	if s.wsClosed {
		s.mu.Unlock()
		return nil
	}
	s.pc = pc
	s.mu.Unlock()
	return p.register(pc)
}

// addHeld registers a held long-polling connection (see heldConn). It stays registered until
// hc's close or handOff takes it off.
func (p *epoller) addHeld(hc *heldConn, nc net.Conn) (*epollConn, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	pc := &epollConn{hc: hc, nc: nc, rc: rc}
	if err := p.register(pc); err != nil {
		return nil, err
	}
	return pc, nil
}

// register puts pc in the table and on epoll.
func (p *epoller) register(pc *epollConn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pc.id == removedID {
		return nil
	}
	if p.stopping {
		return errEpollerClosed
	}
	if !p.started {
		if err := p.startLocked(); err != nil {
			return err
		}
	}
	p.nextID++
	pc.id = p.nextID
	var ctlErr error
	cerr := pc.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET}
		setEventID(&ev, pc.id)
		ctlErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if cerr != nil {
		return nil // closed meanwhile: its session is ending
	}
	if ctlErr != nil {
		return fmt.Errorf("epoll_ctl: %w", ctlErr)
	}
	p.conns[pc.id] = pc
	return nil
}

// remove takes a registration off, before its socket is closed. A reader busy with it ends
// at its next read, which fails on the closed socket.
func (p *epoller) remove(pc *epollConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := pc.id
	if id == removedID {
		return
	}
	pc.id = removedID
	if id == 0 {
		return // not registered
	}
	delete(p.conns, id)
	if p.closed {
		return
	}
	_ = pc.rc.Control(func(fd uintptr) {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// close ends the loop; registrations left are dropped with it (their sessions are closed by
// Server.Close, which calls close after closing them). Readers still busy end by themselves.
func (p *epoller) close() {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.stopping = true
		if p.started && !p.closed {
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1)
			_, _ = unix.Write(p.wakefd, one[:])
		}
	})
}

// loop waits for events and hands the ready connections to readers, until close.
func (p *epoller) loop() {
	events := make([]unix.EpollEvent, epollEvents)
	ready := make([]*epollConn, 0, epollEvents)
	for {
		n, err := p.wait(events)
		if err != nil {
			// Nothing else is expected of a valid epoll descriptor; stop rather than spin.
			// The WebSockets registered are read no more: their heartbeats end them.
			p.log.Error("engineio: epoll_wait failed; WebSockets are no longer read", "err", err)
			p.shutdown()
			return
		}
		ready = ready[:0]
		wake := false
		p.mu.RLock()
		for i := range events[:n] {
			id := eventID(&events[i])
			if id == wakeID {
				wake = true
				continue
			}
			pc := p.conns[id]
			if pc == nil {
				continue
			}
			if events[i].Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				pc.hup.Store(true) // before claim: the reader that has pc reads again
			}
			if pc.claim() {
				ready = append(ready, pc)
			}
		}
		stopping := p.stopping
		p.mu.RUnlock()
		if wake && stopping {
			p.shutdown()
			return
		}
		for _, pc := range ready {
			p.dispatch(pc)
		}
		clear(ready)
	}
}

// wait returns the next events, parking the goroutine in the runtime's netpoller until the
// epoll instance has some: epoll_wait itself never blocks.
func (p *epoller) wait(events []unix.EpollEvent) (int, error) {
	var n int
	var werr error
	err := p.erc.Read(func(fd uintptr) bool {
		for {
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr != unix.EINTR {
				break
			}
		}
		return n > 0 || werr != nil // none yet: park until the instance is readable
	})
	if err != nil {
		return 0, err
	}
	return n, werr
}

// shutdown closes the epoll instance and the eventfd, on the loop's way out.
func (p *epoller) shutdown() {
	p.mu.Lock()
	p.closed = true
	clear(p.conns)
	p.epf.Close()
	unix.Close(p.wakefd)
	p.mu.Unlock()
}

// dispatch has pc read by a reader: a new one while fewer than maxEpollReaders run, else the
// first to be free.
func (p *epoller) dispatch(pc *epollConn) {
	p.queueMu.Lock()
	if p.readers >= maxEpollReaders {
		p.queue = append(p.queue, pc)
		p.queueMu.Unlock()
		return
	}
	p.readers++
	p.queueMu.Unlock()
	p.g.Go(func() { p.reader(pc) })
}

// epollReader is a reader goroutine's state: its buffer, and the function of its read system
// call with its results, made once per reader. A function given to RawConn escapes, so one
// made per call would be an allocation per read.
type epollReader struct {
	buf    []byte
	n      int
	err    error
	readFn func(fd uintptr) bool
}

func newEpollReader(buf []byte) *epollReader {
	r := &epollReader{buf: buf}
	r.readFn = func(fd uintptr) bool {
		for {
			r.n, r.err = unix.Read(int(fd), r.buf)
			if r.err != unix.EINTR {
				return true
			}
		}
	}
	return r
}

// reader serves pc, then every connection queued, and ends when the queue is empty.
func (p *epoller) reader(pc *epollConn) {
	r, _ := p.epollReaders.Get().(*epollReader)
	if r == nil {
		bp := readBufs.Get().(*[]byte)
		r = newEpollReader(*bp)
	}
	defer p.epollReaders.Put(r)
	for {
		if p.serve(pc, r) {
			// Not drained after its turn, or an event came meanwhile: to the back of the
			// queue, still held (turnBusy): no event dispatches it meanwhile.
			p.queueMu.Lock()
			p.queue = append(p.queue, pc)
			p.queueMu.Unlock()
		}
		p.queueMu.Lock()
		if len(p.queue) == 0 {
			p.readers--
			p.queue = nil // let a burst's array go
			p.queueMu.Unlock()
			return
		}
		pc = p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.queueMu.Unlock()
	}
}

// errWSEOF is what reading a connection that the client closed gives: the same error gorilla
// gives, a close error with status 1006 (no close frame), so that the session's close reason is
// the same whichever reader saw it. wsframe.CloseReply answers it with nothing.
var errWSEOF error = &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()}

// serve reads what pc's socket has, without blocking, and hands it to its session. It lets go
// of pc once the socket is drained, and returns true when pc is to be read again: the turn
// ended before that, or an event came meanwhile. It does neither once the session has ended
// or the connection failed (pc is nobody's to read then).
func (p *epoller) serve(pc *epollConn, r *epollReader) bool {
	buf := r.buf
	for range readsPerTurn {
		err := pc.rc.Read(r.readFn)
		n, rerr := r.n, r.err
		if err == nil {
			err = rerr
		}
		if err != nil {
			n = 0
		}
		if n > 0 && !p.deliver(pc, buf[:n]) {
			return false
		}
		switch {
		case err == unix.EAGAIN:
			return !pc.release(p)
		case err != nil || n == 0:
			if err == nil {
				err = errWSEOF
			} else {
				err = fmt.Errorf("engineio: read: %w", err)
			}
			if pc.hc != nil {
				pc.hc.readFailed(err)
			} else {
				pc.s.wsReadFailed(pc.nc, err)
			}
			return false
		case n < len(buf) && !pc.hup.Load():
			// Drained: a read takes all that the socket holds, up to the buffer's size. What
			// comes after it is a new edge, an event the loop gives this reader (turnAgain)
			// or the next.
			return !pc.release(p)
		}
	}
	return true
}

// deliver hands what was read of pc to its held connection or its WebSocket session, and
// reports whether pc is still to be read. A panic there (in the protocol's code or in a
// session's handler) ends that connection, logged with its stack: never the process.
func (p *epoller) deliver(pc *epollConn, data []byte) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("engineio: panic handling what a connection sent; closing it",
				"panic", v, "stack", string(debug.Stack()))
			if pc.hc != nil {
				pc.hc.close()
			} else {
				pc.s.wsReadFailed(pc.nc, fmt.Errorf("engineio: panic: %v", v))
			}
			ok = false
		}
	}()
	if pc.hc != nil {
		return pc.hc.consume(data)
	}
	return pc.s.consumeWS(pc.nc, &pc.fr, data)
}

// writeNow writes what of b the socket takes without waiting: n < len(b) with a nil error
// when its buffer is full. It goes around the runtime's netpoller (no deadline, no write lock):
// the caller is the connection's only writer at the time (a held connection writes one
// answer at a time; a WebSocket's Send holds the session's wmu). The system call is made raw,
// without telling the scheduler: on a non-blocking socket it never waits, so the scheduler
// has nothing to hand over meanwhile, and a broadcast making one per receiver saves the
// bookkeeping.
func (pc *epollConn) writeNow(b []byte) (int, error) {
	w := writeCalls.Get().(*writeCall)
	w.bufs[0] = b
	err := pc.rc.Control(w.fn)
	n, werr := w.n, w.err
	w.bufs[0] = nil
	writeCalls.Put(w)
	switch {
	case err != nil:
		return 0, err
	case werr == unix.EAGAIN:
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return n, nil
}

// writeCall is writeNow's system call function with its argument and results, pooled: one made
// per call would be an allocation per write.
type writeCall struct {
	bufs [1][]byte
	n    int
	err  error
	fn   func(fd uintptr)
}

var writeCalls = sync.Pool{New: func() any {
	w := &writeCall{}
	w.fn = func(fd uintptr) {
		b := w.bufs[0]
		for {
			n, _, errno := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
			if errno == unix.EINTR {
				continue
			}
			w.n, w.err = int(n), nil
			if errno != 0 {
				w.n, w.err = 0, errno
			}
			return
		}
	}
	return w
}}
