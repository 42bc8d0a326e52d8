package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain runs the test binary as a floor worker when the floor scenario starts it as one
// (it starts os.Executable(), this binary under go test).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == floorWorkerArg {
		os.Exit(floorWorkerMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestFloorSmoke: the floor scenario at -smoke size completes, reports a positive CPU per
// operation for each part and the floor in every server's column, and puts the floor and each
// server's ratio to it beside the events scenario's CPU per event.
func TestFloorSmoke(t *testing.T) {
	hook, err := startHook(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer hook.close()
	servers := []string{serverReference, serverSiobridge}
	var log strings.Builder
	b := &bench{hook: hook, base: time.Now(), smoke: true, duration: 500 * time.Millisecond, rep: &report{servers: servers}, log: &log}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.runFloor(ctx, 20, 200)
	if len(b.failures) > 0 || b.floor == nil {
		t.Fatalf("floor scenario failed: %v\n%s", b.failures, log.String())
	}
	totals := 0
	for _, f := range b.rep.figures {
		if !strings.HasPrefix(f.scenario, "floor") {
			t.Errorf("figure %q of scenario %q", f.name, f.scenario)
		}
		for _, s := range servers {
			v, ok := f.values[s]
			if !ok || v < 0 || (!strings.HasSuffix(f.name, ", user") && !strings.HasSuffix(f.name, ", system") && v <= 0) {
				t.Errorf("%s: %s = %v (set: %v), want a positive number", f.name, s, v, ok)
			}
		}
		if strings.HasSuffix(f.name, "CPU per 1M") {
			totals++
		}
	}
	if totals != 4 {
		t.Errorf("%d parts reported a total CPU per operation, want 4 (HTTP 1 and %d in flight, WebSocket, the bridge at a rate)", totals, floorInflight)
	}
	if b.floor.atRate.Ops <= 0 {
		t.Errorf("the bridge at a rate measured %d acks", b.floor.atRate.Ops)
	}

	const events = "events from 50 to the webhook"
	_, _, atRate := b.floor.atRate.perMillion()
	b.rep.set(events, "CPU per 1M events at the highest rate held", "s", lowerBetter, "%.1f", serverSiobridge, 4*b.floor.perMillion())
	b.rep.set(events, "CPU per 1M events at 200/s", "s", lowerBetter, "%.1f", serverSiobridge, 2*atRate)
	b.compareFloor()
	var sb strings.Builder
	b.rep.writeMarkdown(&sb)
	for _, want := range []string{
		"| " + events + " | CPU per 1M events at the highest rate held, ratio to floor | × | - | 4.0 |",
		"| " + events + " | CPU per 1M events at 200/s, ratio to the minimal bridge | × | - | 2.0 |",
		"| " + events + " | at the same rate: a minimal Go bridge (gorilla/websocket, net/http: frame in, POST, ack frame out) at 200/s from 20 WebSockets, CPU per 1M |",
	} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("no %q in:\n%s", want, sb.String())
		}
	}
}
