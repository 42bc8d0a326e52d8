// Command siobench measures siobridge against a hand-written Node.js Socket.IO bridge
// (reference/bridge.js, on socket.io 4.8) on the same machine in the same run, and prints
// each figure for both with the ratio.
//
//	siobench [-scenario idle,broadcast,events,polling,scale,floor] [-server both] [-smoke]
//
// It starts each server itself, pinned to one core with taskset (-server-cpu; GOMAXPROCS=1
// for siobridge), with its webhooks pointed at siobench's own receiver, and drives it with raw
// Engine.IO v4 / Socket.IO v5 clients spread over several 127.0.0.x source addresses. Run
// siobench itself on another core (`taskset -c 1 siobench ...`; `make bench` does). Every
// server is started fresh for each scenario and stopped after it. All traffic stays on
// 127.0.0.0/8. See docs/performance.md for the method and the latest table.
//
// -event-batch-max N (default 32; 0 or 1 for none) adds a run of the events scenario on
// siobridge with [webhook] batch_max = N (batched event webhooks), a scenario of its own in
// the table. The receiver checks in every events run that each socket's events arrive in the
// order they were sent.
//
// With -smoke the sizes are tiny and the run checks that the harness works: every scenario
// completes and every message sent is received, in order per socket, or siobench exits 1;
// the events scenario runs batched too. Timings are never checked.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == floorWorkerArg {
		os.Exit(floorWorkerMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "siobench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	scenarios := flag.String("scenario", "idle,broadcast,events,polling,scale,floor", "comma-separated scenarios: idle, broadcast, events, polling, scale, floor (the least CPU per event on this machine, put beside the events scenario's)")
	servers := flag.String("server", "both", "siobridge, reference or both")
	clients := flag.Int("clients", 0, "clients in every scenario (0: each scenario's own size, see the -*-clients flags)")
	idleClients := flag.String("idle-clients", "10000,50000", "idle scenario: comma-separated client counts, one run each")
	broadcastClients := flag.String("broadcast-clients", "10000", "broadcast scenario: comma-separated client counts, one run each")
	broadcastRate := flag.Float64("broadcast-rate", 2, "broadcast scenario: broadcasts per second in the steady phase")
	eventClients := flag.Int("event-clients", 2000, "events scenario: clients")
	eventRates := flag.String("event-rates", "250,500,750,1000,1500,2000,2500,3000,4000,5000,6000,8000,10000,15000,20000", "events scenario: the total rates (events/s) stepped through, until one is not held")
	eventBatchMax := flag.Int("event-batch-max", 32, "events scenario: also run siobridge with [webhook] batch_max set to this, a scenario of its own (0 or 1: none)")
	pollingClients := flag.Int("polling-clients", 5000, "polling scenario: clients")
	scaleClients := flag.Int("scale-clients", 100000, "scale scenario (siobridge only): idle WebSocket clients held")
	scaleHold := flag.Duration("scale-hold", time.Minute, "scale scenario: how long the clients are held, answering pings, before they are counted")
	scalePerProcess := flag.Int("scale-per-process", 0, "scale scenario: the most clients per siobridge process (0: what RLIMIT_NOFILE allows); more clients are split over several processes")
	scaleWorker := flag.String("scale-worker", "", "internal: run as a scale scenario's worker, holding -scale-worker-clients clients of this URL")
	scaleWorkerClients := flag.Int("scale-worker-clients", 0, "internal: see -scale-worker")
	duration := flag.Duration("duration", 5*time.Second, "length of one measuring phase (a rate step, the steady broadcast)")
	smoke := flag.Bool("smoke", false, "tiny sizes and short phases; fail if any message is lost or any scenario fails")
	siobridgeBin := flag.String("siobridge", "", "siobridge binary (empty: go build ./cmd/siobridge into a temporary directory)")
	referenceJS := flag.String("reference", "cmd/siobench/reference/bridge.js", "the reference bridge (npm ci in its directory first)")
	var siobridgeEnv envList
	flag.Var(&siobridgeEnv, "siobridge-env", "extra setting for siobridge as SIOBRIDGE_KEY=VALUE, e.g. SIOBRIDGE_API_PPROF=true to profile it during a run (repeatable; the table then measures that configuration, not the defaults)")
	serverCPU := flag.String("server-cpu", "0", "taskset -c list the servers run on (empty: not pinned)")
	nsources := flag.Int("sources", 8, "loopback source addresses the clients are spread over (127.0.0.2 and up)")
	markdown := flag.String("markdown", "", "also write the table as Markdown to this file")
	chartFile := flag.String("chart", "", "also write an SVG chart of memory per idle connection and broadcast latency against the client count, both servers, to this file (run several -idle-clients and -broadcast-clients counts)")
	flag.Parse()

	if *scaleWorker != "" {
		return runScaleWorker(ctx, *scaleWorker, *scaleWorkerClients, *nsources)
	}
	if *smoke {
		*idleClients = "50"
		*broadcastClients = "50"
		*eventClients = 50
		*pollingClients = 50
		*scaleClients = 50
		*scalePerProcess = 25 // two processes: the split is part of what the smoke checks
		*scaleHold = time.Second
		*eventRates = "200"
		*duration = 2 * time.Second
		if *clients == 0 {
			*clients = 50
		}
	}
	if *clients > 0 {
		*idleClients = strconv.Itoa(*clients)
		*broadcastClients = strconv.Itoa(*clients)
		*eventClients = *clients
		*pollingClients = *clients
		*scaleClients = *clients
	}
	idleSizes, err := parseList(*idleClients, strconv.Atoi)
	if err != nil {
		return fmt.Errorf("-idle-clients: %w", err)
	}
	broadcastSizes, err := parseList(*broadcastClients, strconv.Atoi)
	if err != nil {
		return fmt.Errorf("-broadcast-clients: %w", err)
	}
	rates, err := parseList(*eventRates, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
	if err != nil {
		return fmt.Errorf("-event-rates: %w", err)
	}
	var names []string
	switch *servers {
	case "both":
		names = []string{serverReference, serverSiobridge}
	case serverSiobridge, serverReference:
		names = []string{*servers}
	default:
		return fmt.Errorf("-server: want siobridge, reference or both, got %q", *servers)
	}
	var which []string
	for _, sc := range strings.Split(*scenarios, ",") {
		switch sc = strings.TrimSpace(sc); sc {
		case "idle", "broadcast", "events", "polling", "scale", "floor":
			which = append(which, sc)
		case "":
		default:
			return fmt.Errorf("-scenario: unknown scenario %q (idle, broadcast, events, polling, scale, floor)", sc)
		}
	}

	maxClients, err := raiseFileLimit()
	if err != nil {
		return err
	}
	cfg := serverConfig{siobridgeBin: *siobridgeBin, referenceJS: *referenceJS, cpu: *serverCPU, siobridgeEnv: siobridgeEnv}
	if cfg.cpu != "" {
		if _, err := os.Stat("/usr/bin/taskset"); err != nil {
			fmt.Fprintln(os.Stderr, "siobench: taskset not found: the servers run unpinned")
			cfg.cpu = ""
		}
	}
	for _, n := range names {
		switch n {
		case serverSiobridge:
			if cfg.siobridgeBin == "" {
				dir, err := os.MkdirTemp("", "siobench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				if cfg.siobridgeBin, err = buildSiobridge(dir); err != nil {
					return err
				}
			}
		case serverReference:
			if _, err := os.Stat(filepath.Join(filepath.Dir(cfg.referenceJS), "node_modules", "socket.io")); err != nil {
				return fmt.Errorf("the reference bridge's packages are not installed: run `npm ci` in %s (or make deps)", filepath.Dir(cfg.referenceJS))
			}
		}
	}

	base := time.Now()
	hook, err := startHook(base)
	if err != nil {
		return err
	}
	defer hook.close()
	b := &bench{
		cfg: cfg, src: newSources(*nsources), hook: hook, base: base, smoke: *smoke, duration: *duration,
		maxClients: maxClients, rep: &report{servers: names}, chart: &chart{}, log: os.Stderr,
		api: &http.Client{Timeout: 30 * time.Second},
	}
	started := time.Now()
	for _, sc := range which {
		for _, name := range names {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			switch sc {
			case "idle":
				for _, n := range idleSizes {
					b.runIdle(ctx, name, n)
				}
			case "broadcast":
				for _, n := range broadcastSizes {
					b.runBroadcast(ctx, name, n, *broadcastRate)
				}
			case "events":
				b.runEvents(ctx, name, *eventClients, rates, 1)
				if name == serverSiobridge && *eventBatchMax > 1 {
					b.runEvents(ctx, name, *eventClients, rates, *eventBatchMax)
				}
			case "polling":
				b.runPolling(ctx, name, *pollingClients)
			case "scale":
				// siobridge's alone: the target is about siobridge at a size the reference
				// is not compared at.
				if name == serverSiobridge {
					b.runScale(ctx, *scaleClients, *scalePerProcess, *scaleHold)
				}
			case "floor":
				// The machine's, not a server's: measured once.
				if name == names[0] {
					b.runFloor(ctx, *eventClients, rates[0])
				}
			}
		}
	}
	b.compareFloor()
	fmt.Println()
	b.rep.writeText(os.Stdout)
	fmt.Printf("\n(%s; servers on CPU %q; siobridge advantage: how many times better siobridge's figure is)\n", time.Since(started).Round(time.Second), cfg.cpu)
	if *markdown != "" {
		f, err := os.Create(*markdown)
		if err != nil {
			return err
		}
		b.rep.writeMarkdown(f)
		if err := f.Close(); err != nil {
			return err
		}
	}
	if *chartFile != "" {
		f, err := os.Create(*chartFile)
		if err != nil {
			return err
		}
		if err := b.chart.writeSVG(f, names, "siobench, servers pinned to one core"); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if len(b.failures) > 0 {
		return fmt.Errorf("%d checks failed:\n  %s", len(b.failures), strings.Join(b.failures, "\n  "))
	}
	if *smoke {
		fmt.Println("siobench smoke: every scenario completed on every server; no message lost")
	}
	return nil
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return out, nil
}

// envList is the repeatable -siobridge-env flag: SIOBRIDGE_* settings only, so a typo such as
// a missing prefix is an error rather than a setting silently ignored.
type envList []string

func (l *envList) String() string { return strings.Join(*l, " ") }

func (l *envList) Set(v string) error {
	key, _, ok := strings.Cut(v, "=")
	if !ok || !strings.HasPrefix(key, "SIOBRIDGE_") || key == "SIOBRIDGE_" {
		return fmt.Errorf("want SIOBRIDGE_KEY=VALUE, got %q", v)
	}
	*l = append(*l, v)
	return nil
}
