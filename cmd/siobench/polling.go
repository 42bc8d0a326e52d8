package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pollingTransports are the generator's HTTP clients for long-polling, one per source address,
// each keeping enough idle connections that every client's next request finds one.
func (s *sources) pollingClients(perSource int) []*http.Client {
	out := make([]*http.Client, len(s.tcp))
	for i, d := range s.tcp {
		out[i] = &http.Client{Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConns:        0, // no limit across hosts
			MaxIdleConnsPerHost: perSource,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		}}
	}
	return out
}

// pollClient is one Socket.IO client over HTTP long-polling, connected to the namespace "/".
type pollClient struct {
	http *http.Client
	url  string // with the sid
}

var errPollClosed = errors.New("session closed by the server")

// dialPolling does the Engine.IO handshake and the Socket.IO CONNECT over long-polling.
func dialPolling(ctx context.Context, hc *http.Client, base string) (*pollClient, error) {
	body, err := pollGet(ctx, hc, base+"?EIO=4&transport=polling")
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if len(body) == 0 || body[0] != '0' {
		return nil, fmt.Errorf("handshake: expected an open packet, got %.40q", body)
	}
	var open struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(body[1:], &open); err != nil || open.SID == "" {
		return nil, fmt.Errorf("handshake: bad open packet %.80q", body)
	}
	c := &pollClient{http: hc, url: base + "?EIO=4&transport=polling&sid=" + open.SID}
	if err := c.post(ctx, "40"); err != nil {
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	for {
		body, err := pollGet(ctx, hc, c.url)
		if err != nil {
			return nil, fmt.Errorf("read CONNECT reply: %w", err)
		}
		for p := range bytes.SplitSeq(body, []byte{0x1e}) {
			switch {
			case bytes.HasPrefix(p, []byte("40")):
				return c, nil
			case bytes.HasPrefix(p, []byte("44")):
				return nil, fmt.Errorf("connection refused: %.80s", p)
			case len(p) == 1 && p[0] == '2':
				if err := c.post(ctx, "3"); err != nil {
					return nil, err
				}
			}
		}
	}
}

func pollGet(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET: %s: %.80s", resp.Status, body)
	}
	return body, nil
}

func (c *pollClient) post(ctx context.Context, packets string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(packets))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST: %s", resp.Status)
	}
	return nil
}

// pollLoop long-polls until ctx ends or the session closes, answering pings and handing
// message packets (without their '4') to h.
func (c *pollClient) pollLoop(ctx context.Context, h func(p []byte, now time.Time)) error {
	for ctx.Err() == nil {
		body, err := pollGet(ctx, c.http, c.url)
		if err != nil {
			return err
		}
		now := time.Now()
		for p := range bytes.SplitSeq(body, []byte{0x1e}) {
			if len(p) == 0 {
				continue
			}
			switch p[0] {
			case '1':
				return errPollClosed
			case '2':
				if err := c.post(ctx, "3"); err != nil {
					return err
				}
			case '4':
				h(p[1:], now)
			}
		}
	}
	return ctx.Err()
}

// runPolling: n long-polling clients each receive one broadcast a second: the server's CPU
// per 1k clients, the delivery latency and the memory per session.
func (b *bench) runPolling(ctx context.Context, name string, n int) {
	scenario := "polling " + countLabel(n) + ", 1 msg/s each"
	n = b.capClients(scenario, n)
	seconds := max(2, int(2*b.duration.Seconds()))
	got := make([]atomic.Int32, seconds)
	lat := newRecorder()
	h := func(p []byte, now time.Time) {
		rest, ok := bytes.CutPrefix(p, []byte(`2["tick",`))
		if !ok {
			return
		}
		var v [2]int64
		if parseInts(rest, v[:]) != 2 || v[0] < 0 || v[0] >= int64(len(got)) {
			return
		}
		got[v[0]].Add(1)
		lat.add(now.Sub(b.base).Nanoseconds() - v[1])
	}

	s, err := startServer(ctx, b.cfg, name, b.hook.url)
	if err != nil {
		b.fail("%s: %v", scenario, err)
		return
	}
	defer s.stop()
	time.Sleep(500 * time.Millisecond)
	rss0, _ := s.rssBytes()
	hcs := b.src.pollingClients(n/len(b.src.tcp) + 64)
	defer func() {
		for _, hc := range hcs {
			hc.CloseIdleConnections()
		}
	}()
	base := "http://" + s.public + "/socket.io/"

	loopCtx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	defer func() {
		stopLoops()
		loops.Wait()
	}()
	var failed, dropped atomic.Int64
	var emu sync.Mutex
	var errs []error
	var next atomic.Int64
	var wg sync.WaitGroup
	clients := make([]*pollClient, n)
	start := time.Now()
	for range min(100, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				c, err := dialPolling(cctx, hcs[i%len(hcs)], base)
				cancel()
				if err != nil {
					failed.Add(1)
					emu.Lock()
					if len(errs) < 5 {
						errs = append(errs, err)
					}
					emu.Unlock()
					continue
				}
				clients[i] = c
				loops.Add(1)
				go func() {
					defer loops.Done()
					if err := c.pollLoop(loopCtx, h); err != nil && loopCtx.Err() == nil {
						dropped.Add(1)
					}
				}()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		b.fail("%s on %s: %d of %d clients did not connect (first errors: %v)", scenario, name, f, n, errs)
		return
	}
	time.Sleep(time.Second) // every client back in its GET
	rss1, _ := s.rssBytes()

	cpu0, self0 := s.cpuSecondsOr0(), selfCPUSeconds()
	phase := time.Now()
	for i := range seconds {
		time.Sleep(time.Until(phase.Add(time.Duration(i) * time.Second)))
		body := fmt.Appendf(nil, `{"event":"tick","args":[%d,%d,"%s"]}`, i, b.now(), strings.Repeat("x", 64))
		if err := b.emit(s, body, n); err != nil {
			b.fail("%s on %s: %v", scenario, name, err)
			return
		}
	}
	time.Sleep(time.Until(phase.Add(time.Duration(seconds) * time.Second)))
	cpu1, self1 := s.cpuSecondsOr0(), selfCPUSeconds()
	busy := time.Since(phase).Seconds()
	deadline := time.Now().Add(10 * time.Second)
	lost := 0
	for {
		lost = 0
		for i := range got {
			lost += n - int(got[i].Load())
		}
		if lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The clients leave, as closed pages do: each stops polling and sends Engine.IO's close.
	// Then the server's memory, once it has no session left, against before they came.
	stopLoops()
	loops.Wait()
	left, leftErr := b.leave(ctx, s, clients)
	for _, hc := range hcs {
		hc.CloseIdleConnections()
	}
	time.Sleep(afterLeaving) // the runtime's collector and scavenger, and Node's, at work
	rss2, _ := s.rssBytes()

	b.logf("%s on %s: %d connected in %s, %d broadcasts, lost %d, sessions dropped %d, all left in %s", scenario, name, n, elapsed.Round(time.Millisecond), seconds, lost, dropped.Load(), left.Round(time.Millisecond))
	b.rep.set(scenario, "connect rate", "conn/s", higherBetter, "", name, float64(n)/elapsed.Seconds())
	b.rep.set(scenario, "CPU per 1k clients", "% of a core", lowerBetter, "%.1f", name, (cpu1-cpu0)/busy*100/(float64(n)/1000))
	b.rep.set(scenario, "delivery p50", "ms", lowerBetter, "%.1f", name, ms(lat.percentile(0.50)))
	b.rep.set(scenario, "delivery p99", "ms", lowerBetter, "%.1f", name, ms(lat.percentile(0.99)))
	b.rep.set(scenario, "siobench CPU", "% of a core", noRatio, "", name, (self1-self0)/busy*100)
	b.rep.set(scenario, "RSS per session", "KiB", lowerBetter, "%.1f", name, float64(rss1-rss0)/float64(n)/1024)
	b.rep.set(scenario, "messages lost", "", lowerBetter, "", name, float64(lost))
	b.rep.set(scenario, "RSS held at the peak", "MiB", lowerBetter, "%.1f", name, float64(rss1-rss0)/(1<<20))
	b.rep.set(scenario, fmt.Sprintf("RSS held %s after all left", afterLeaving), "MiB", lowerBetter, "%.1f", name, float64(rss2-rss0)/(1<<20))
	if lost > 0 {
		b.fail("%s on %s: %d deliveries lost", scenario, name, lost)
	}
	if leftErr != nil {
		b.fail("%s on %s: %v", scenario, name, leftErr)
	}
}

// afterLeaving is how long after the last session ended the polling scenario reads the
// server's memory again.
const afterLeaving = 5 * time.Second

// leave sends every client's close packet, 100 at a time, and waits until the server counts
// no socket (POST /emit reaches none), up to 30 s: how long that took.
func (b *bench) leave(ctx context.Context, s *server, clients []*pollClient) (time.Duration, error) {
	start := time.Now()
	sem := make(chan struct{}, 100)
	var wg sync.WaitGroup
	for _, c := range clients {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_ = c.post(cctx, "1") // refused once the session is gone: nothing to do then
		})
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := b.emit(s, []byte(`{"event":"gone","args":[]}`), 0); err == nil {
			return time.Since(start), nil
		} else if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("sockets left 30 s after the clients closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
