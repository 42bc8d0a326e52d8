package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bench is one run of siobench: the servers' configuration, the generator's shared parts
// (source addresses, webhook receiver, clock), and the report.
type bench struct {
	cfg        serverConfig
	src        *sources
	hook       *hookServer
	base       time.Time
	smoke      bool
	duration   time.Duration // one measuring phase (a rate step, the steady broadcast)
	maxClients int           // what RLIMIT_NOFILE lets one process hold
	rep        *report
	chart      *chart // figures against the client count, for -chart
	log        io.Writer
	failures   []string
	api        *http.Client
	floor      *floorResult // the floor scenario's, when it ran
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "siobench: "+format+"\n", args...)
}

// fail records a failed check; siobench exits non-zero at the end.
func (b *bench) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.failures = append(b.failures, msg)
	b.logf("FAIL: %s", msg)
}

func (b *bench) now() int64 { return time.Since(b.base).Nanoseconds() }

func wsURL(s *server) string {
	return "ws://" + s.public + "/socket.io/?EIO=4&transport=websocket"
}

// capClients limits n to what the file-descriptor limit allows, noting it in the report.
func (b *bench) capClients(scenario string, n int) int {
	if n <= b.maxClients {
		return n
	}
	b.rep.note("%s: %d clients asked, %d run: RLIMIT_NOFILE's hard limit here allows no more per process (and siobench cannot raise it without CAP_SYS_RESOURCE)", scenario, n, b.maxClients)
	return b.maxClients
}

func countLabel(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// connect connects n WebSocket clients to s and fails the scenario when any could not.
func (b *bench) connect(ctx context.Context, s *server, scenario string, n int, h handler) ([]*wsClient, time.Duration, bool) {
	clients, failed, errs, elapsed := connectWS(ctx, b.src, wsURL(s), n, 100, h)
	if failed > 0 {
		b.fail("%s on %s: %d of %d clients did not connect (first errors: %v)", scenario, s.name, failed, n, errs)
		closeAll(clients)
		return nil, 0, false
	}
	return clients, elapsed, true
}

// runIdle: n idle WebSocket clients; the server's memory per connection and the connect rate.
func (b *bench) runIdle(ctx context.Context, name string, n int) {
	scenario := "idle " + countLabel(n)
	n = b.capClients(scenario, n)
	if n != 0 && countLabel(n) != scenario[5:] {
		scenario = fmt.Sprintf("idle %s (of %s)", countLabel(n), scenario[5:])
	}
	s, err := startServer(ctx, b.cfg, name, b.hook.url)
	if err != nil {
		b.fail("%s: %v", scenario, err)
		return
	}
	defer s.stop()
	time.Sleep(500 * time.Millisecond)
	rss0, _ := s.rssBytes()
	cpu0, _ := s.cpuSeconds()
	clients, elapsed, ok := b.connect(ctx, s, scenario, n, nil)
	if !ok {
		return
	}
	defer closeAll(clients)
	cpu1, _ := s.cpuSeconds()
	settle := 3 * time.Second
	if b.smoke {
		settle = 300 * time.Millisecond
	}
	time.Sleep(settle)
	rss1, _ := s.rssBytes()
	if !s.alive() {
		b.fail("%s: %s exited while holding the clients\n%s", scenario, name, s.log.String())
		return
	}
	b.logf("%s on %s: %d connected in %s, RSS %d → %d MiB", scenario, name, n, elapsed.Round(time.Millisecond), rss0>>20, rss1>>20)
	b.rep.set(scenario, "connect rate", "conn/s", higherBetter, "", name, float64(n)/elapsed.Seconds())
	b.rep.set(scenario, "RSS per connection", "KiB", lowerBetter, "%.1f", name, float64(rss1-rss0)/float64(n)/1024)
	b.chart.add("RSS per idle WebSocket connection (KiB)", name, n, float64(rss1-rss0)/float64(n)/1024)
	b.rep.set(scenario, "server RSS", "MiB", lowerBetter, "", name, float64(rss1)/(1<<20))
	b.rep.set(scenario, "CPU per 1k connects", "ms", lowerBetter, "%.0f", name, (cpu1-cpu0)*1e3/float64(n)*1000)
}

// emit POSTs one /emit body to s and checks it reached want sockets (want < 0: any).
func (b *bench) emit(s *server, body []byte, want int) error {
	n, err := b.emitCount(s, body)
	if err != nil {
		return err
	}
	if want >= 0 && n != want {
		return fmt.Errorf("POST /emit reached %d sockets, want %d", n, want)
	}
	return nil
}

// emitCount POSTs one /emit body to s and returns how many sockets it reached (the first
// "sockets" of the answer).
func (b *bench) emitCount(s *server, body []byte) (int, error) {
	resp, err := b.api.Post("http://"+s.api+"/emit", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST /emit: %s: %s", resp.Status, out)
	}
	_, rest, ok := bytes.Cut(out, []byte(`"sockets":`))
	var v [1]int64
	if !ok || parseInts(rest, v[:]) != 1 {
		return 0, fmt.Errorf("POST /emit: no socket count in %.200s", out)
	}
	return int(v[0]), nil
}

// broadcastTracker counts each broadcast's deliveries and the arrival of its last one.
type broadcastTracker struct {
	base time.Time
	got  []atomic.Int32
	last []atomic.Int64 // ns since base
	sent []int64        // ns since base
}

func (t *broadcastTracker) handle(_ *wsClient, head []byte, now time.Time) {
	rest, ok := bytes.CutPrefix(head, []byte(`2["news",`))
	if !ok {
		return
	}
	var v [2]int64
	if parseInts(rest, v[:]) != 2 || v[0] < 0 || v[0] >= int64(len(t.got)) {
		return
	}
	seq, at := v[0], now.Sub(t.base).Nanoseconds()
	t.got[seq].Add(1)
	for {
		old := t.last[seq].Load()
		if at <= old || t.last[seq].CompareAndSwap(old, at) {
			break
		}
	}
}

// wait waits until broadcasts [from, to) reached n clients each, or timeout.
func (t *broadcastTracker) wait(from, to, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		done := true
		for i := from; i < to; i++ {
			if int(t.got[i].Load()) < n {
				done = false
				break
			}
		}
		if done {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runBroadcast: POST /emit of a 1 KB message to n WebSocket clients, at a steady rate (how
// long until the last client has each one), then a burst (deliveries per second, CPU).
func (b *bench) runBroadcast(ctx context.Context, name string, n int, rate float64) {
	scenario := "broadcast 1KB to " + countLabel(n)
	n = b.capClients(scenario, n)
	steady := max(1, int(rate*b.duration.Seconds()))
	burst := 20
	if b.smoke {
		burst = 5
	}
	tr := &broadcastTracker{base: b.base, got: make([]atomic.Int32, steady+burst), last: make([]atomic.Int64, steady+burst), sent: make([]int64, steady+burst)}
	s, err := startServer(ctx, b.cfg, name, b.hook.url)
	if err != nil {
		b.fail("%s: %v", scenario, err)
		return
	}
	defer s.stop()
	clients, _, ok := b.connect(ctx, s, scenario, n, tr.handle)
	if !ok {
		return
	}
	defer closeAll(clients)
	pad := strings.Repeat("x", 1000)
	body := func(seq int) []byte {
		tr.sent[seq] = b.now()
		return fmt.Appendf(nil, `{"event":"news","args":[%d,%d,%q]}`, seq, tr.sent[seq], pad)
	}

	// Steady: one broadcast every 1/rate seconds. Its CPU is the cost of a delivery when each
	// receiver gets one frame at a time; in the burst, a server may write several at once.
	steadyCPU0, steadyUser0 := s.cpuSecondsOr0(), s.userCPUSecondsOr0()
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := range steady {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		if err := b.emit(s, body(i), n); err != nil {
			b.fail("%s on %s: %v", scenario, name, err)
			return
		}
	}
	tr.wait(0, steady, n, 30*time.Second)
	steadyCPU, steadyUser := s.cpuSecondsOr0()-steadyCPU0, s.userCPUSecondsOr0()-steadyUser0
	steadyDelivered := 0
	for i := range steady {
		steadyDelivered += int(tr.got[i].Load())
	}
	var lat []int64
	for i := range steady {
		if int(tr.got[i].Load()) == n {
			lat = append(lat, tr.last[i].Load()-tr.sent[i])
		}
	}

	// Burst: back to back, as fast as POST /emit answers.
	cpu0, self0 := s.cpuSecondsOr0(), selfCPUSeconds()
	for i := steady; i < steady+burst; i++ {
		if err := b.emit(s, body(i), n); err != nil {
			b.fail("%s on %s: %v", scenario, name, err)
			return
		}
	}
	tr.wait(steady, steady+burst, n, 60*time.Second)
	cpu1, self1 := s.cpuSecondsOr0(), selfCPUSeconds()
	var lastAt int64
	burstDelivered := 0
	for i := steady; i < steady+burst; i++ {
		lastAt = max(lastAt, tr.last[i].Load())
		burstDelivered += int(tr.got[i].Load())
	}
	lost := 0
	for i := range tr.got {
		lost += n - int(tr.got[i].Load())
	}
	burstTime := time.Duration(lastAt - tr.sent[steady])
	b.logf("%s on %s: steady %d at %.1f/s, burst %d in %s, lost %d", scenario, name, steady, rate, burst, burstTime.Round(time.Millisecond), lost)
	label := fmt.Sprintf("at %g/s", rate)
	b.rep.set(scenario, "deliveries per second (burst of "+strconv.Itoa(burst)+")", "msg/s", higherBetter, "", name, float64(burstDelivered)/burstTime.Seconds())
	b.rep.set(scenario, "last client has it, p50 "+label, "ms", lowerBetter, "%.1f", name, ms(percentileOf(lat, 0.50)))
	b.rep.set(scenario, "last client has it, p99 "+label, "ms", lowerBetter, "%.1f", name, ms(percentileOf(lat, 0.99)))
	b.chart.add("broadcast 1 KB: last client has it, p50 (ms)", name, n, ms(percentileOf(lat, 0.50)))
	b.chart.add("broadcast 1 KB: last client has it, p99 (ms)", name, n, ms(percentileOf(lat, 0.99)))
	b.rep.set(scenario, "CPU per 1M deliveries "+label, "s", lowerBetter, "%.2f", name, steadyCPU/float64(max(1, steadyDelivered))*1e6)
	// A steady delivery is one frame to one receiver, whose loopback cost in the kernel both
	// servers pay alike: user-space CPU is what tells the servers apart.
	b.rep.set(scenario, "user CPU per 1M deliveries "+label, "s", lowerBetter, "%.2f", name, steadyUser/float64(max(1, steadyDelivered))*1e6)
	b.rep.set(scenario, "CPU per 1M deliveries (burst)", "s", lowerBetter, "%.2f", name, (cpu1-cpu0)/float64(burstDelivered)*1e6)
	b.rep.set(scenario, "server CPU during the burst", "% of a core", noRatio, "", name, (cpu1-cpu0)/burstTime.Seconds()*100)
	b.rep.set(scenario, "siobench CPU during the burst", "% of a core", noRatio, "", name, (self1-self0)/burstTime.Seconds()*100)
	b.rep.set(scenario, "messages lost", "", lowerBetter, "", name, float64(lost))
	if lost > 0 {
		b.fail("%s on %s: %d deliveries lost", scenario, name, lost)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// eventStep is what one rate step of the events scenario measured.
type eventStep struct {
	rate, sentRate   float64
	sent, received   int64
	acks             int64
	hookP50, hookP99 time.Duration
	ackP50, ackP99   time.Duration
	cpuPerMillion    float64 // the server's CPU per 1M events, user and system
	userPerMillion   float64 // its user-space part
	selfCPU          float64 // siobench's, % of a core
}

// held: everything arrived and was acknowledged, at the asked rate, p99 under 50 ms.
func (st eventStep) held() bool {
	return st.received == st.sent && st.acks == st.sent && st.sentRate >= 0.95*st.rate && st.hookP99 < 50*time.Millisecond
}

// runEvents: n WebSocket clients emit events with an ack callback at stepped total rates;
// the highest rate held, emit→webhook and emit→ack. batchMax > 1 runs siobridge with
// [webhook] batch_max set to it, a scenario of its own.
func (b *bench) runEvents(ctx context.Context, name string, n int, rates []float64, batchMax int) {
	scenario := "events from " + countLabel(n) + " to the webhook"
	cfg := b.cfg
	if batchMax > 1 {
		scenario += fmt.Sprintf(", in batches of up to %d", batchMax)
		cfg.siobridgeEnv = append(slices.Clip(cfg.siobridgeEnv), fmt.Sprintf("SIOBRIDGE_WEBHOOK_BATCH_MAX=%d", batchMax))
	}
	n = b.capClients(scenario, n)
	var step atomic.Int64
	step.Store(-1)
	var acks atomic.Int64
	var ackRec atomic.Pointer[recorder]
	ackRec.Store(newRecorder())
	h := func(_ *wsClient, head []byte, now time.Time) {
		if len(head) == 0 || head[0] != '3' {
			return
		}
		i := 1
		for i < len(head) && head[i] >= '0' && head[i] <= '9' {
			i++
		}
		if i >= len(head) || head[i] != '[' {
			return
		}
		var v [3]int64
		if parseInts(head[i+1:], v[:]) != 3 || v[0] != step.Load() {
			return
		}
		ackRec.Load().add(now.Sub(b.base).Nanoseconds() - v[2])
		acks.Add(1)
	}
	s, err := startServer(ctx, cfg, name, b.hook.url)
	if err != nil {
		b.fail("%s: %v", scenario, err)
		return
	}
	defer s.stop()
	disorder0, batches0 := b.hook.outOfOrder.Load(), b.hook.batches.Load()
	defer func() {
		if d := b.hook.outOfOrder.Load() - disorder0; d > 0 {
			b.fail("%s on %s: %d events reached the webhook before an earlier event of their socket", scenario, name, d)
		}
		if batches := b.hook.batches.Load() - batches0; (batchMax > 1) != (batches > 0) {
			b.fail("%s on %s: %d batches reached the webhook", scenario, name, batches)
		}
	}()
	clients, _, ok := b.connect(ctx, s, scenario, n, h)
	if !ok {
		return
	}
	defer closeAll(clients)

	var best, first *eventStep
	var seq atomic.Int64
	for si, rate := range rates {
		ackRec.Store(newRecorder())
		acks.Store(0)
		step.Store(int64(si))
		b.hook.startStep(int64(si))
		// The first step, the rate both servers are compared at, runs firstStepPhases phases:
		// at 250/s a phase uses a few dozen clock ticks of a server's CPU, which a collection
		// or a round of pings moves by a tick or two.
		dur := b.duration
		if si == 0 && !b.smoke {
			dur *= firstStepPhases
		}
		cpu0, user0, self0 := s.cpuSecondsOr0(), s.userCPUSecondsOr0(), selfCPUSeconds()
		sent, writeErrs := b.sendEvents(clients, int64(si), rate, dur, &seq)
		drain := 5 * time.Second
		deadline := time.Now().Add(drain)
		for time.Now().Before(deadline) && (b.hook.received.Load() < sent || acks.Load() < sent) {
			time.Sleep(10 * time.Millisecond)
		}
		cpu1, user1, self1 := s.cpuSecondsOr0(), s.userCPUSecondsOr0(), selfCPUSeconds()
		lat := b.hook.latency.Load()
		st := eventStep{
			rate: rate, sentRate: float64(sent) / dur.Seconds(),
			sent: sent, received: b.hook.received.Load(), acks: acks.Load(),
			hookP50: lat.percentile(0.50), hookP99: lat.percentile(0.99),
			ackP50: ackRec.Load().percentile(0.50), ackP99: ackRec.Load().percentile(0.99),
			selfCPU: (self1 - self0) / dur.Seconds() * 100,
		}
		if st.received > 0 {
			st.cpuPerMillion = (cpu1 - cpu0) / float64(st.received) * 1e6
			st.userPerMillion = (user1 - user0) / float64(st.received) * 1e6
		}
		b.logf("%s on %s: step %.0f/s: sent %d (%.0f/s), webhooks %d, acks %d, webhook p50 %s p99 %s, ack p99 %s, CPU per 1M %.1f s (user %.1f), held %v",
			scenario, name, rate, sent, st.sentRate, st.received, st.acks, st.hookP50.Round(time.Microsecond), st.hookP99.Round(time.Microsecond), st.ackP99.Round(time.Microsecond), st.cpuPerMillion, st.userPerMillion, st.held())
		if writeErrs > 0 {
			b.fail("%s on %s: %d events could not be written", scenario, name, writeErrs)
			return
		}
		if b.smoke && (st.received != sent || st.acks != sent) {
			b.fail("%s on %s: %d events sent, %d reached the webhook, %d acks came back", scenario, name, sent, st.received, st.acks)
			return
		}
		if first == nil {
			first = &st
		}
		if !st.held() {
			break
		}
		best = &st
	}
	held := 0.0
	if best != nil {
		held = best.rate
	}
	b.rep.set(scenario, "highest rate held (p99 < 50 ms, none lost)", "events/s", higherBetter, "", name, held)
	if best != nil {
		// Each server's own highest rate: batching pays off at high rates, where batches fill.
		b.rep.set(scenario, "CPU per 1M events at the highest rate held", "s", lowerBetter, "%.1f", name, best.cpuPerMillion)
	}
	if first == nil {
		return
	}
	// The same rate for both servers: the first step.
	at := fmt.Sprintf(" at %.0f/s", first.rate)
	b.rep.set(scenario, "emit→webhook p50"+at, "ms", lowerBetter, "%.2f", name, ms(first.hookP50))
	b.rep.set(scenario, "emit→webhook p99"+at, "ms", lowerBetter, "%.2f", name, ms(first.hookP99))
	b.rep.set(scenario, "emit→ack p50"+at, "ms", lowerBetter, "%.2f", name, ms(first.ackP50))
	b.rep.set(scenario, "emit→ack p99"+at, "ms", lowerBetter, "%.2f", name, ms(first.ackP99))
	b.rep.set(scenario, "CPU per 1M events"+at, "s", lowerBetter, "%.1f", name, first.cpuPerMillion)
	b.rep.set(scenario, "user CPU per 1M events"+at, "s", lowerBetter, "%.1f", name, first.userPerMillion)
	b.rep.set(scenario, "siobench CPU"+at, "% of a core", noRatio, "", name, first.selfCPU)
}

// firstStepPhases is how many phases (-duration) the events scenario's first step lasts.
const firstStepPhases = 4

// sendEvents sends events from the clients at rate per second in total for dur, each
// `42<ack id>["ev",step,seq,sent-ns]`, from 4 sender goroutines that each own a share of
// the clients. It returns how many were sent and how many writes failed.
func (b *bench) sendEvents(clients []*wsClient, step int64, rate float64, dur time.Duration, seq *atomic.Int64) (int64, int64) {
	const senders = 4
	var sent, errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(dur)
	for k := range senders {
		mine := clients[k*len(clients)/senders : (k+1)*len(clients)/senders]
		if len(mine) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			share := rate * float64(len(mine)) / float64(len(clients))
			buf := make([]byte, 0, 96)
			var mySent int64
			idx := 0
			for {
				now := time.Now()
				if !now.Before(end) {
					return
				}
				due := int64(share * now.Sub(start).Seconds())
				for mySent < due && time.Now().Before(end) {
					c := mine[idx%len(mine)]
					idx++
					buf = append(buf[:0], "42"...)
					buf = strconv.AppendUint(buf, c.ackID.Add(1), 10)
					buf = append(buf, `["ev",`...)
					buf = strconv.AppendInt(buf, step, 10)
					buf = append(buf, ',')
					buf = strconv.AppendInt(buf, seq.Add(1), 10)
					buf = append(buf, ',')
					buf = strconv.AppendInt(buf, b.now(), 10)
					buf = append(buf, ']')
					if err := c.write(buf); err != nil {
						errs.Add(1)
					} else {
						sent.Add(1)
					}
					mySent++
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return sent.Load(), errs.Load()
}
