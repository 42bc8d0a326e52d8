package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The floor scenario measures the least CPU any server needs on this machine for one client
// event with an ack: one webhook POST (the server is the HTTP client: it writes the request and
// reads the app's reply) plus one WebSocket frame read and one written (the event in, the ack
// out). Each part runs in a worker process of its own (this binary, run with -floor-worker),
// pinned as the servers are and with GOMAXPROCS=1 as siobridge runs, which measures its own
// CPU with getrusage around a fixed count of operations:
//
//   - http: keep-alive HTTP/1.1 POSTs of a 300-byte JSON event to siobench's webhook receiver
//     (the events scenario's), each answered with a 20-byte ack, one at a time and with
//     floorInflight in flight; the worker is the client, and the receiver runs in siobench.
//   - ws: a gorilla/websocket echo server; siobench's client writes a small text frame and
//     waits for it back, one at a time; the worker is the server.
//
// The floor is the cheaper of the two HTTP figures plus the WebSocket one. Nothing in it parses
// Engine.IO or Socket.IO, queues, or builds a webhook: what a server spends above it is its own.
//
// Those parts run back to back, never idle, as a server is at its highest rate. At the events
// scenario's first rate (250 events/s from 2000 clients) a server sleeps between events, and
// each event wakes it twice (the frame, then the app's reply), which costs more per event than
// running flat out. So what the plainest Go server pays at that rate is measured too, the same
// way the servers are:
//
//   - bridge: a minimal bridge in a worker process (gorilla/websocket and net/http, a
//     goroutine per connection): it reads a frame, POSTs floorBody to the receiver, reads the
//     reply and writes an ack frame. siobench's clients, as many as the events scenario's,
//     send it frames at the events scenario's first rate for one phase, and the worker
//     measures its CPU over that phase. It is no floor (a server can do better than a
//     goroutine per connection), but it shows what waking up per event costs.
//
// The events scenario's CPU per event at its highest rate held is put beside the back-to-back
// floor, and its CPU per event at the first rate beside the minimal bridge at that rate.

// floorWorkerArg, as the first argument, runs siobench as a floor worker (see floorWorkerMain).
const floorWorkerArg = "-floor-worker"

// floorInflight is the HTTP part's concurrency beside one at a time: siobridge's default
// webhook concurrency (and the reference's).
const floorInflight = 64

// floorBody is the event POSTed by the HTTP part: 300 bytes of JSON shaped like an event
// webhook, whose ack the receiver answers with floorReply's 20 bytes. Its step (-2) is none of
// the events scenario's, so the receiver answers it without counting it.
var floorBody = func() []byte {
	head := `{"type":"event","namespace":"/","socket_id":"Xb2cG7-fQ1pZr0AAAB","event":"ev","args":[-2,10000,1],"ack":true,"handshake":{"address":"127.0.0.2","query":{"EIO":"4","transport":"websocket"},"headers":{"user-agent":"siobench"}},"pad":"`
	tail := `"}`
	return []byte(head + strings.Repeat("x", 300-len(head)-len(tail)) + tail)
}()

// floorReply is the receiver's answer to floorBody.
const floorReply = `{"ack":[-2,10000,1]}`

// floorFrame is the WebSocket part's message: an event with an ack id, as a client sends it.
var floorFrame = []byte(`4217["ev",-2,10000,1]`)

// cpuUse is what a worker measured: ops operations in wall, using user and sys CPU.
type cpuUse struct {
	Ops  int64         `json:"ops"`
	User time.Duration `json:"user"`
	Sys  time.Duration `json:"sys"`
	Wall time.Duration `json:"wall"`
}

// perMillion is user, system and total CPU seconds per million operations.
func (u cpuUse) perMillion() (user, sys, total float64) {
	if u.Ops <= 0 {
		return 0, 0, 0
	}
	f := 1e6 / float64(u.Ops) / float64(time.Second)
	return float64(u.User) * f, float64(u.Sys) * f, float64(u.User+u.Sys) * f
}

// floorResult is the floor scenario's three measurements.
type floorResult struct {
	http1, httpN, ws cpuUse
	// atRate is the minimal bridge's CPU at rate events/s from clients WebSockets (zero
	// Ops: not measured).
	atRate  cpuUse
	rate    float64
	clients int
}

// perMillion is the floor in CPU seconds per million events: the cheaper HTTP figure plus the
// WebSocket one.
func (r floorResult) perMillion() float64 {
	_, _, h1 := r.http1.perMillion()
	_, _, hn := r.httpN.perMillion()
	_, _, w := r.ws.perMillion()
	return min(h1, hn) + w
}

// runFloor measures the floor and adds its figures to the report; b.floor keeps it for the
// events scenario's comparison.
// The bridge part runs at rate events/s from clients WebSockets, the events scenario's first
// step.
func (b *bench) runFloor(ctx context.Context, clients int, rate float64) {
	const scenario = "floor: least CPU per event"
	ops, warm, limit := 20000, 1000, 15*time.Second
	if b.smoke {
		ops, warm, limit = 300, 50, 10*time.Second
	}
	r := floorResult{rate: rate, clients: clients}
	var err error
	if r.http1, err = b.floorHTTP(ctx, 1, ops, warm, limit); err != nil {
		b.fail("%s: HTTP, 1 in flight: %v", scenario, err)
		return
	}
	if r.httpN, err = b.floorHTTP(ctx, floorInflight, ops, warm, limit); err != nil {
		b.fail("%s: HTTP, %d in flight: %v", scenario, floorInflight, err)
		return
	}
	if r.ws, err = b.floorWS(ctx, ops, warm, limit); err != nil {
		b.fail("%s: WebSocket: %v", scenario, err)
		return
	}
	parts := []struct {
		label string
		u     cpuUse
	}{
		{"webhook POST, 1 in flight: client", r.http1},
		{fmt.Sprintf("webhook POST, %d in flight: client", floorInflight), r.httpN},
		{"WebSocket frame read + write: server", r.ws},
	}
	if rate > 0 && clients > 0 {
		if r.atRate, err = b.floorBridge(ctx, clients, rate); err != nil {
			b.fail("%s: minimal bridge at %.0f/s: %v", scenario, rate, err)
			return
		}
		parts = append(parts, struct {
			label string
			u     cpuUse
		}{r.atRateLabel() + ": server", r.atRate})
	}
	for _, p := range parts {
		user, sys, total := p.u.perMillion()
		b.logf("%s: %s: %d ops in %s, CPU per 1M: user %.1f s, system %.1f s", scenario, p.label, p.u.Ops, p.u.Wall.Round(time.Millisecond), user, sys)
		b.rep.setAll(scenario, p.label+" CPU per 1M, user", "s", "%.1f", user)
		b.rep.setAll(scenario, p.label+" CPU per 1M, system", "s", "%.1f", sys)
		b.rep.setAll(scenario, p.label+" CPU per 1M", "s", "%.1f", total)
	}
	b.rep.setAll(scenario, "floor: CPU per 1M events (cheaper POST + frame read and write)", "s", "%.1f", r.perMillion())
	b.floor = &r
}

// atRateLabel names the bridge part in the report.
func (r floorResult) atRateLabel() string {
	return fmt.Sprintf("minimal Go bridge (gorilla/websocket, net/http: frame in, POST, ack frame out) at %.0f/s from %s WebSockets", r.rate, countLabel(r.clients))
}

// compareFloor puts the floor beside the events scenario's CPU per event, with each server's
// ratio to it, once both were measured: the back-to-back floor beside the CPU per event at
// each server's highest rate held (both busy), and the floor at the first rate beside the CPU
// per event at that rate (both idle between events).
func (b *bench) compareFloor() {
	if b.floor == nil {
		return
	}
	atRate := ""
	if b.floor.atRate.Ops > 0 {
		atRate = fmt.Sprintf("CPU per 1M events at %.0f/s", b.floor.rate)
	}
	_, _, atRateFloor := b.floor.atRate.perMillion()
	for _, f := range slices.Clone(b.rep.figures) {
		if !strings.HasPrefix(f.scenario, "events ") {
			continue
		}
		var floor float64
		var label, ratioTo string
		switch f.name {
		case "CPU per 1M events at the highest rate held":
			floor, label, ratioTo = b.floor.perMillion(), "floor: least CPU per 1M events on this machine, back to back", "floor"
		case atRate:
			floor, label, ratioTo = atRateFloor, "at the same rate: a "+b.floor.atRateLabel()+", CPU per 1M", "the minimal bridge"
		default:
			continue
		}
		rows := []*figure{{scenario: f.scenario, name: label, unit: "s", format: "%.1f", values: map[string]float64{}}}
		ratio := &figure{scenario: f.scenario, name: f.name + ", ratio to " + ratioTo, unit: "×", better: lowerBetter, format: "%.1f", values: map[string]float64{}}
		for _, s := range b.rep.servers {
			rows[0].values[s] = floor
			if v, ok := f.values[s]; ok && floor > 0 {
				ratio.values[s] = v / floor
			}
		}
		rows = append(rows, ratio)
		b.rep.insertAfter(f, rows...)
	}
}

// floorHTTP runs the HTTP part with inflight POSTs at a time.
func (b *bench) floorHTTP(ctx context.Context, inflight, ops, warm int, limit time.Duration) (cpuUse, error) {
	w, err := b.startFloorWorker(ctx, "-mode", "http", "-url", b.hook.url, "-inflight", strconv.Itoa(inflight),
		"-ops", strconv.Itoa(ops), "-warm", strconv.Itoa(warm), "-limit", limit.String())
	if err != nil {
		return cpuUse{}, err
	}
	return w.result()
}

// floorWS runs the WebSocket part: a worker serves, siobench's client writes a frame and waits
// for it back, ops+warm times or until limit.
func (b *bench) floorWS(ctx context.Context, ops, warm int, limit time.Duration) (cpuUse, error) {
	w, err := b.startFloorWorker(ctx, "-mode", "ws", "-ops", strconv.Itoa(ops), "-warm", strconv.Itoa(warm), "-limit", limit.String())
	if err != nil {
		return cpuUse{}, err
	}
	addr, err := w.line()
	if err != nil {
		w.kill()
		return cpuUse{}, err
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.DialContext(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		w.kill()
		return cpuUse{}, err
	}
	defer conn.Close()
	deadline := time.Now().Add(limit)
	_ = conn.NetConn().SetDeadline(deadline)
	for i := 0; i < ops+warm && time.Now().Before(deadline); i++ {
		if err := conn.WriteMessage(websocket.TextMessage, floorFrame); err != nil {
			break // the worker stopped at its own limit, or failed: its result says which
		}
		if _, _, err := conn.ReadMessage(); err != nil {
			break
		}
	}
	return w.result()
}

// floorBridge runs the bridge part: a worker serves, clients WebSockets of siobench's send
// it frames at rate per second in all for as long as the events scenario's first step, after
// a warm-up in which each client sends one, and the worker measures its CPU meanwhile.
func (b *bench) floorBridge(ctx context.Context, clients int, rate float64) (cpuUse, error) {
	w, err := b.startFloorWorker(ctx, "-mode", "bridge", "-url", b.hook.url, "-limit", (firstStepPhases*b.duration + time.Minute).String())
	if err != nil {
		return cpuUse{}, err
	}
	fail := func(err error) (cpuUse, error) {
		w.kill()
		return cpuUse{}, err
	}
	addr, err := w.line()
	if err != nil {
		return fail(err)
	}
	var got atomic.Int64
	conns := make([]*websocket.Conn, 0, clients)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range clients {
		d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second}
		if b.src != nil && len(b.src.wsDial) > 0 {
			d = b.src.wsDial[b.src.pick()]
		}
		c, _, err := d.DialContext(ctx, "ws://"+addr+"/", nil)
		if err != nil {
			return fail(fmt.Errorf("client %d: %w", i, err))
		}
		conns = append(conns, c)
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				got.Add(1)
			}
		}()
	}
	// wait until got reaches n, or up to 10 s.
	wait := func(n int64) error {
		deadline := time.Now().Add(10 * time.Second)
		for got.Load() < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if g := got.Load(); g < n {
			return fmt.Errorf("%d of %d acks came back", g, n)
		}
		return nil
	}
	var sent int64
	send := func(c *websocket.Conn) error {
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		sent++
		return c.WriteMessage(websocket.TextMessage, floorFrame)
	}
	for _, c := range conns {
		if err := send(c); err != nil {
			return fail(err)
		}
	}
	if err := wait(sent); err != nil {
		return fail(fmt.Errorf("warm-up: %w", err))
	}
	if _, err := io.WriteString(w.in, "start\n"); err != nil {
		return fail(err)
	}
	if _, err := w.line(); err != nil { // "started"
		return fail(err)
	}
	// As long as the events scenario's first step, whose CPU per event it is put beside.
	dur := b.duration
	if !b.smoke {
		dur *= firstStepPhases
	}
	start := time.Now()
	end := start.Add(dur)
	for i := 0; time.Now().Before(end); {
		due := int64(rate * time.Since(start).Seconds())
		for n := int64(0); n < due-int64(i) && time.Now().Before(end); n++ {
			if err := send(conns[i%len(conns)]); err != nil {
				return fail(err)
			}
			i++
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := wait(sent); err != nil {
		return fail(err)
	}
	if _, err := io.WriteString(w.in, "stop\n"); err != nil {
		return fail(err)
	}
	return w.result()
}

// floorWorker is a running worker process, seen from siobench.
type floorWorker struct {
	cmd    *exec.Cmd
	in     io.WriteCloser // the bridge part's start and stop
	out    *bufio.Scanner
	stderr *tailBuffer
	done   chan struct{}
}

// startFloorWorker starts this binary as a floor worker with args, pinned as the servers are.
func (b *bench) startFloorWorker(ctx context.Context, args ...string) (*floorWorker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	argv := append([]string{self, floorWorkerArg}, args...)
	if b.cfg.cpu != "" {
		argv = append([]string{"taskset", "-c", b.cfg.cpu}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), "GOMAXPROCS=1")
	w := &floorWorker{cmd: cmd, stderr: &tailBuffer{max: 4 << 10}, done: make(chan struct{})}
	cmd.Stderr = w.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w.out = bufio.NewScanner(stdout)
	if w.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the floor worker: %w", err)
	}
	return w, nil
}

// line is the worker's next line of output.
func (w *floorWorker) line() (string, error) {
	if w.out.Scan() {
		return w.out.Text(), nil
	}
	err := w.out.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return "", fmt.Errorf("floor worker: %w: %s", err, w.stderr.String())
}

// result reads the worker's measurement and waits for it to exit.
func (w *floorWorker) result() (cpuUse, error) {
	var u cpuUse
	l, err := w.line()
	if err == nil {
		err = json.Unmarshal([]byte(l), &u)
	}
	if werr := w.cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("floor worker: %w: %s", werr, w.stderr.String())
	}
	if err == nil && (u.Ops <= 0 || u.User+u.Sys <= 0) {
		err = fmt.Errorf("floor worker measured nothing: %+v", u)
	}
	return u, err
}

func (w *floorWorker) kill() {
	_ = w.cmd.Process.Kill()
	_ = w.cmd.Wait()
}

// floorWorkerMain is a floor worker: it runs the part named by -mode, prints (for ws) its
// address, then its measurement as one line of JSON, and returns the exit code.
func floorWorkerMain(args []string) int {
	fs := flag.NewFlagSet("siobench "+floorWorkerArg, flag.ContinueOnError)
	mode := fs.String("mode", "", "http, ws or bridge")
	url := fs.String("url", "", "http, bridge: the webhook receiver")
	inflight := fs.Int("inflight", 1, "http: POSTs in flight")
	ops := fs.Int("ops", 1000, "operations measured")
	warm := fs.Int("warm", 100, "operations before the measurement")
	limit := fs.Duration("limit", 10*time.Second, "the most the operations may take, warm-up included")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var u cpuUse
	var err error
	switch *mode {
	case "http":
		u, err = floorHTTPClient(*url, *inflight, *ops, *warm, *limit)
	case "ws":
		u, err = floorWSServer(*ops, *warm, *limit)
	case "bridge":
		u, err = floorBridgeServer(*url, *limit)
	default:
		err = fmt.Errorf("-mode: want http, ws or bridge, got %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "siobench floor worker:", err)
		return 1
	}
	out, _ := json.Marshal(u)
	fmt.Println(string(out))
	return 0
}

// meter measures the process's CPU from start to stop.
type meter struct {
	user, sys time.Duration
	at        time.Time
}

func startMeter() (meter, error) {
	user, sys, err := processCPU()
	return meter{user: user, sys: sys, at: time.Now()}, err
}

func (m meter) stop(ops int64) (cpuUse, error) {
	user, sys, err := processCPU()
	return cpuUse{Ops: ops, User: user - m.user, Sys: sys - m.sys, Wall: time.Since(m.at)}, err
}

// newFloorClient is a keep-alive HTTP/1.1 client of the webhook receiver for inflight POSTs at
// a time, each bounded by timeout.
func newFloorClient(inflight int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		MaxIdleConnsPerHost: inflight,
		MaxConnsPerHost:     inflight,
		DisableCompression:  true,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// postFloor POSTs floorBody to url and checks that the answer is floorReply, no more and no
// less; buf, of len(floorReply)+1 bytes, is the caller's, to read it into.
func postFloor(client *http.Client, url string, buf []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(floorBody))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	n, err := io.ReadFull(resp.Body, buf)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(buf[:n]) != floorReply {
		return fmt.Errorf("POST %s: %s %q %v", url, resp.Status, buf[:n], err)
	}
	return nil
}

// floorHTTPClient POSTs floorBody to url, inflight at a time over keep-alive connections: warm
// POSTs, then ops measured, all within limit.
func floorHTTPClient(url string, inflight, ops, warm int, limit time.Duration) (cpuUse, error) {
	client := newFloorClient(inflight, limit)
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(limit)
	// run makes n POSTs over inflight goroutines and returns how many succeeded.
	run := func(n int) (int64, error) {
		var next, done atomic.Int64
		var first error
		var once sync.Once
		var wg sync.WaitGroup
		for range inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, len(floorReply)+1)
				for next.Add(1) <= int64(n) && time.Now().Before(deadline) {
					if err := postFloor(client, url, buf); err != nil {
						once.Do(func() { first = err })
						return
					}
					done.Add(1)
				}
			}()
		}
		wg.Wait()
		return done.Load(), first
	}
	if _, err := run(warm); err != nil {
		return cpuUse{}, err
	}
	m, err := startMeter()
	if err != nil {
		return cpuUse{}, err
	}
	n, err := run(ops)
	if err != nil {
		return cpuUse{}, err
	}
	return m.stop(n)
}

// floorWSServer serves one WebSocket on 127.0.0.1, printing its address, and echoes each
// message it reads: warm of them, then ops measured, all within limit.
func floorWSServer(ops, warm int, limit time.Duration) (cpuUse, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return cpuUse{}, err
	}
	defer ln.Close()
	fmt.Println(ln.Addr().String())
	type result struct {
		u   cpuUse
		err error
	}
	res := make(chan result, 1)
	up := websocket.Upgrader{}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer conn.Close()
		_ = conn.NetConn().SetDeadline(time.Now().Add(limit))
		echo := func() error {
			typ, p, err := conn.ReadMessage()
			if err != nil {
				return err
			}
			return conn.WriteMessage(typ, p)
		}
		for range warm {
			if err := echo(); err != nil {
				res <- result{err: fmt.Errorf("warm-up: %w", err)}
				return
			}
		}
		m, err := startMeter()
		if err != nil {
			res <- result{err: err}
			return
		}
		var n int64
		for n < int64(ops) {
			if err := echo(); err != nil {
				if n == 0 {
					res <- result{err: err}
					return
				}
				break // the limit: what was done is the measurement
			}
			n++
		}
		u, err := m.stop(n)
		res <- result{u, err}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	select {
	case r := <-res:
		return r.u, r.err
	case <-time.After(limit + 10*time.Second):
		return cpuUse{}, errors.New("no client came")
	}
}

// floorAck is the frame the bridge part answers each event with: its ack, as a server sends it.
var floorAck = []byte(`4317[-2,10000,1]`)

// floorBridgeServer is the bridge part's worker: it serves WebSockets on 127.0.0.1, printing
// its address, and answers each frame by POSTing floorBody to url and, once the reply is read,
// writing floorAck. A line "start" on its input starts the measurement (it answers
// "started"); "stop" ends it, and the result counts the acks written in between. It ends
// after limit in any case.
func floorBridgeServer(url string, limit time.Duration) (cpuUse, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return cpuUse{}, err
	}
	defer ln.Close()
	client := newFloorClient(floorInflight, 10*time.Second)
	defer client.CloseIdleConnections()
	var acks atomic.Int64
	failed := make(chan error, 1)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	up := websocket.Upgrader{}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			fail(err)
			return
		}
		defer conn.Close()
		reply := make([]byte, len(floorReply)+1)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return // the client left
			}
			if err := postFloor(client, url, reply); err != nil {
				fail(err)
				return
			}
			if err := conn.WriteMessage(websocket.TextMessage, floorAck); err != nil {
				return
			}
			acks.Add(1)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	fmt.Println(ln.Addr().String())

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(limit)
	var m meter
	var acks0 int64
	for {
		select {
		case l, ok := <-lines:
			switch {
			case !ok:
				return cpuUse{}, errors.New("input closed before stop")
			case l == "start":
				acks0 = acks.Load()
				if m, err = startMeter(); err != nil {
					return cpuUse{}, err
				}
				fmt.Println("started")
			case l == "stop":
				return m.stop(acks.Load() - acks0)
			}
		case err := <-failed:
			return cpuUse{}, err
		case <-timeout:
			return cpuUse{}, fmt.Errorf("no stop within %s", limit)
		}
	}
}
