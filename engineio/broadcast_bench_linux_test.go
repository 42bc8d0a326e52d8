package engineio

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkWebSocketBroadcast measures one message sent to many WebSocket sessions of the
// poller, on real loopback connections, as a broadcast does: each op sends the same 1 KiB
// text message to every session, then reads it on every client. The clients read their frame
// with one read each, on the benchmark's goroutine, so that they cost little next to the
// server. Besides deliveries per second it reports the allocations and the process's user and
// system CPU per delivery (clients included: compare runs, not the figure alone).
//
// send: each message with Send, written by Send itself. burst=5: five messages to every
// session with EnqueueBatched, as a burst of broadcasts sends, then Server.Flush, whose
// writers write each session's five frames in one writev.
func BenchmarkWebSocketBroadcast(b *testing.B) {
	b.Run("send", func(b *testing.B) { benchWebSocketBroadcast(b, 1) })
	b.Run("burst=5", func(b *testing.B) { benchWebSocketBroadcast(b, 5) })
}

func benchWebSocketBroadcast(b *testing.B, burst int) {
	const clients = 1000
	ts := newTestServerCap(b, Options{PingInterval: time.Hour}, clients)
	deferUntilFlush(ts)
	conns := make([]net.Conn, clients)
	readers := make([]*bufio.Reader, clients)
	for i := range conns {
		conns[i], readers[i] = dialBenchWebSocket(b, ts)
	}
	sessions := ts.eio.sessionList()
	if len(sessions) != clients {
		b.Fatalf("%d sessions, want %d", len(sessions), clients)
	}
	msg := NewMessage([]byte(strings.Repeat("x", 1024)), false)
	frame := make([]byte, len(msg.wire))
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	ru0 := benchRusage(b)
	b.ResetTimer()
	ops := 0
	for b.Loop() {
		if ops%64 == 0 {
			// A minute for each client's next 64 ops: a lost frame fails the benchmark
			// instead of hanging it.
			for _, c := range conns {
				_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			}
		}
		ops++
		for range burst {
			for _, s := range sessions {
				var err error
				if burst > 1 {
					err = s.EnqueueBatched(msg)
				} else {
					err = s.Send(msg)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		if burst > 1 {
			ts.eio.Flush()
		}
		for i, r := range readers {
			for range burst {
				if _, err := io.ReadFull(r, frame); err != nil || string(frame) != string(msg.wire) {
					b.Fatalf("client %d: %v", i, err)
				}
			}
		}
	}
	b.StopTimer()
	ru1 := benchRusage(b)
	runtime.ReadMemStats(&ms1)
	deliveries := float64(b.N * clients * burst)
	b.ReportMetric(deliveries/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/deliveries, "allocs/delivery")
	b.ReportMetric(float64(ru1.Utime.Nano()-ru0.Utime.Nano())/deliveries, "user-ns/delivery")
	b.ReportMetric(float64(ru1.Stime.Nano()-ru0.Stime.Nano())/deliveries, "sys-ns/delivery")
	for _, c := range conns {
		c.Close()
	}
}

func benchRusage(b *testing.B) syscall.Rusage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru
}

// dialBenchWebSocket opens a WebSocket session by hand, reads its open packet, and returns the
// connection and its reader, which holds nothing more.
func dialBenchWebSocket(b *testing.B, ts *testServer) (net.Conn, *bufio.Reader) {
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("upgrade: %v %v", resp, err)
	}
	// The open packet: an unmasked text frame with a 16-bit length at most.
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		b.Fatal(err)
	}
	n := int(hdr[1] & 0x7f)
	if n == 126 {
		if _, err := io.ReadFull(br, hdr); err != nil {
			b.Fatal(err)
		}
		n = int(hdr[0])<<8 | int(hdr[1])
	}
	if _, err := io.ReadFull(br, make([]byte, n)); err != nil {
		b.Fatal(err)
	}
	return conn, br
}
