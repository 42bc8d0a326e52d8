package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The scale scenario holds n idle WebSocket clients on siobridge for longer than a ping
// cycle, and reads siobridge's memory. One process may open only RLIMIT_NOFILE descriptors,
// so when n is more than one process can hold, the clients are split in shards: each shard
// is one siobridge process (its own port, pinned like the others) and one siobench worker
// process (this binary, run with -scale-worker) that holds the shard's clients. The figures
// add up every siobridge process; with a limit that allows n, it is one of each.

// scaleCheck asks a worker how many of its clients are connected. A worker prints
// "connected <n> <failed> <seconds>" once its clients are, then "alive <n>" for each check
// read on its input.
const scaleCheck = "check"

// runScaleWorker is the worker: it connects n clients to url, reports, answers checks, and
// closes them when its input ends.
func runScaleWorker(ctx context.Context, url string, n, nsources int) error {
	if _, err := raiseFileLimit(); err != nil {
		return err
	}
	clients, failed, errs, elapsed := connectWS(ctx, newSources(nsources), url, n, 100, nil)
	fmt.Printf("connected %d %d %.3f\n", len(clients), failed, elapsed.Seconds())
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "siobench worker: %d of %d clients did not connect (first errors: %v)\n", failed, n, errs)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != scaleCheck {
			continue
		}
		alive := 0
		for _, c := range clients {
			select {
			case <-c.done:
			default:
				alive++
			}
		}
		fmt.Printf("alive %d\n", alive)
	}
	closeAll(clients)
	return nil
}

// scaleWorker is a running worker process, seen from the parent.
type scaleWorker struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// startScaleWorker starts a worker for n clients of url; it runs where siobench runs (the
// CPUs it is pinned to, if any).
func startScaleWorker(ctx context.Context, url string, n, nsources int) (*scaleWorker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-scale-worker", url, "-scale-worker-clients", strconv.Itoa(n), "-sources", strconv.Itoa(nsources))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &scaleWorker{cmd: cmd, in: in, lines: make(chan string, 4)}
	go func() {
		defer close(w.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
	}()
	return w, nil
}

// next waits up to timeout for the worker's next line with the prefix, and returns its fields.
func (w *scaleWorker) next(prefix string, timeout time.Duration) ([]string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				return nil, errors.New("the worker exited")
			}
			if f := strings.Fields(line); len(f) > 0 && f[0] == prefix {
				return f[1:], nil
			}
		case <-t.C:
			return nil, fmt.Errorf("no %q line from the worker within %s", prefix, timeout)
		}
	}
}

// stop closes the worker's input (its clients close) and waits for it.
func (w *scaleWorker) stop() {
	w.in.Close()
	done := make(chan struct{})
	go func() {
		_ = w.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		<-done
	}
}

// runScale holds n idle WebSocket clients on siobridge for hold, in shards of at most
// perProcess, and reports siobridge's memory and whether every client stayed.
func (b *bench) runScale(ctx context.Context, n, perProcess int, hold time.Duration) {
	scenario := "scale " + countLabel(n) + " WebSockets"
	why := "-scale-per-process"
	if perProcess <= 0 || perProcess > b.maxClients {
		perProcess = b.maxClients
		why = fmt.Sprintf("one process may open at most RLIMIT_NOFILE (%d) descriptors here", b.maxClients+500)
	}
	shards := (n + perProcess - 1) / perProcess
	if shards > 1 {
		b.rep.note("%s: %d siobridge processes of at most %d clients each (%s), each with a siobench worker process holding its clients; the figures add the siobridge processes up", scenario, shards, perProcess, why)
	}
	servers := make([]*server, 0, shards)
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	var rss0 int64
	for range shards {
		s, err := startServer(ctx, b.cfg, serverSiobridge, b.hook.url)
		if err != nil {
			b.fail("%s: %v", scenario, err)
			return
		}
		servers = append(servers, s)
	}
	time.Sleep(500 * time.Millisecond)
	for _, s := range servers {
		r, _ := s.rssBytes()
		rss0 += r
	}

	workers := make([]*scaleWorker, 0, shards)
	defer func() {
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(w.stop)
		}
		wg.Wait()
	}()
	start := time.Now()
	for i, s := range servers {
		size := min(perProcess, n-i*perProcess)
		w, err := startScaleWorker(ctx, wsURL(s), size, len(b.src.ips))
		if err != nil {
			b.fail("%s: start worker: %v", scenario, err)
			return
		}
		workers = append(workers, w)
	}
	connected, failed := 0, 0
	for _, w := range workers {
		f, err := w.next("connected", 10*time.Minute)
		if err != nil || len(f) != 3 {
			b.fail("%s: %v %v", scenario, err, f)
			return
		}
		c, _ := strconv.Atoi(f[0])
		x, _ := strconv.Atoi(f[1])
		connected += c
		failed += x
	}
	elapsed := time.Since(start)
	if failed > 0 {
		b.fail("%s: %d of %d clients did not connect", scenario, failed, n)
		return
	}
	time.Sleep(3 * time.Second)
	rss1 := int64(0)
	for _, s := range servers {
		r, _ := s.rssBytes()
		rss1 += r
	}
	// Hold: the clients answer the servers' pings (every 25 s, 20 s to answer); a client that
	// missed one would be closed by now.
	time.Sleep(hold)
	alive, counted := 0, 0
	rss2 := int64(0)
	for i, w := range workers {
		if _, err := io.WriteString(w.in, scaleCheck+"\n"); err != nil {
			b.fail("%s: worker %d: %v", scenario, i, err)
			return
		}
		f, err := w.next("alive", time.Minute)
		if err != nil || len(f) != 1 {
			b.fail("%s: worker %d: %v", scenario, i, err)
			return
		}
		a, _ := strconv.Atoi(f[0])
		alive += a
		sockets, err := b.emitCount(servers[i], []byte(`{"event":"count","args":[]}`))
		if err != nil {
			b.fail("%s: %v", scenario, err)
			return
		}
		counted += sockets
		r, _ := servers[i].rssBytes()
		rss2 += r
		if !servers[i].alive() {
			b.fail("%s: a siobridge process exited while holding the clients\n%s", scenario, servers[i].log.String())
			return
		}
	}
	b.logf("%s: %d connected in %s over %d processes; after %s: %d clients still connected, %d sockets counted by siobridge; RSS %d → %d → %d MiB",
		scenario, connected, elapsed.Round(time.Millisecond), shards, hold, alive, counted, rss0>>20, rss1>>20, rss2>>20)
	b.rep.set(scenario, "clients held through "+hold.String(), "", higherBetter, "", serverSiobridge, float64(alive))
	b.rep.set(scenario, "siobridge RSS, all processes", "MiB", lowerBetter, "", serverSiobridge, float64(rss2)/(1<<20))
	b.rep.set(scenario, "RSS per connection", "KiB", lowerBetter, "%.1f", serverSiobridge, float64(rss2-rss0)/float64(n)/1024)
	b.rep.set(scenario, "connect rate", "conn/s", higherBetter, "", serverSiobridge, float64(n)/elapsed.Seconds())
	if alive != n || counted != n {
		b.fail("%s: %d clients held and %d sockets counted through %s, want %d", scenario, alive, counted, hold, n)
	}
}
