package socketio

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleWebSocket measures what an idle WebSocket connection, admitted to "/", costs
// the server: live heap plus goroutine stacks after a collection, divided by the connections
// ("B/conn"), and the goroutines each keeps ("goroutines/conn"). The clients are raw TCP
// connections that did the WebSocket handshake and the Socket.IO CONNECT by hand and then
// read nothing, so almost all the memory counted is the server's (a client's net.Conn is a few
// hundred bytes of it). Each op opens and measures conns connections, then closes them.
func BenchmarkIdleWebSocket(b *testing.B) {
	const conns = 1000
	srv := NewServer(Options{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Close()
	connected := make(chan struct{}, conns)
	srv.Of("/").OnConnect(func(*Socket) { connected <- struct{}{} })
	addr := ts.Listener.Addr().String()

	b.ReportAllocs()
	var perConn, goroutines float64
	for b.Loop() {
		b.StopTimer()
		heap0, g0 := liveMemory()
		b.StartTimer()
		clients := make([]net.Conn, 0, conns)
		for range conns {
			c, err := dialIdleWebSocket(addr)
			if err != nil {
				b.Fatal(err)
			}
			clients = append(clients, c)
			<-connected
		}
		b.StopTimer()
		heap1, g1 := liveMemory()
		perConn = float64(heap1-heap0) / conns
		goroutines = float64(g1-g0) / conns
		for _, c := range clients {
			c.Close()
		}
		deadline := time.Now().Add(10 * time.Second)
		for srv.Engine().Len() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := srv.Engine().Len(); n > 0 {
			b.Fatalf("%d sessions still open 10s after their clients left", n)
		}
		b.StartTimer()
	}
	b.ReportMetric(perConn, "B/conn")
	b.ReportMetric(goroutines, "goroutines/conn")
}

// liveMemory returns the live heap plus the goroutine stacks in use, after a collection, and
// the number of goroutines.
func liveMemory() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse, runtime.NumGoroutine()
}

// dialIdleWebSocket opens a WebSocket to the Engine.IO endpoint at addr, reads the open
// packet, sends the CONNECT to "/" and reads its answer, with nothing left running.
func dialIdleWebSocket(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fail := func(err error) (net.Conn, error) {
		c.Close()
		return nil, err
	}
	req := "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13" +
		"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fail(fmt.Errorf("upgrade: %s", resp.Status))
	}
	if f, err := readFrame(br); err != nil || !bytes.HasPrefix(f, []byte("0{")) {
		return fail(fmt.Errorf("open packet: %q %v", f, err))
	}
	// A masked text frame "40" with the zero mask.
	if _, err := c.Write([]byte{0x81, 0x82, 0, 0, 0, 0, '4', '0'}); err != nil {
		return fail(err)
	}
	if f, err := readFrame(br); err != nil || !strings.HasPrefix(string(f), "40{") {
		return fail(fmt.Errorf("CONNECT answer: %q %v", f, err))
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// readFrame reads one unmasked server frame of under 64 KiB and returns its payload.
func readFrame(br *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, err
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			return nil, err
		}
		n = int(ext[0])<<8 | int(ext[1])
	} else if n == 127 {
		return nil, fmt.Errorf("frame too large")
	}
	p := make([]byte, n)
	_, err := io.ReadFull(br, p)
	return p, err
}
