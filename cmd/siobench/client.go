package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// sources spreads client connections over several loopback source addresses, so that the
// generator is not held to one address's ephemeral ports (about 28k on Linux's default
// range) towards one server port.
type sources struct {
	ips    []net.IP
	wsDial []*websocket.Dialer
	tcp    []*net.Dialer
	next   atomic.Uint64
}

// newSources uses 127.0.0.2 ... 127.0.0.(n+1) as source addresses.
func newSources(n int) *sources {
	s := &sources{}
	pool := &sync.Pool{} // write buffers shared by idle connections
	for i := range n {
		ip := net.IPv4(127, 0, 0, byte(2+i))
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
		s.ips = append(s.ips, ip)
		s.tcp = append(s.tcp, d)
		s.wsDial = append(s.wsDial, &websocket.Dialer{
			NetDialContext:   d.DialContext,
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   2048,
			WriteBufferSize:  1024,
			WriteBufferPool:  pool,
		})
	}
	return s
}

func (s *sources) pick() int { return int(s.next.Add(1) % uint64(len(s.ips))) }

// handler receives a client's Socket.IO packets (Engine.IO message packets without their '4'),
// at most headLen bytes of each: enough for the packet type, the ack id and the first
// arguments the benchmark puts there. It runs on the client's reader goroutine.
type handler func(c *wsClient, head []byte, now time.Time)

const headLen = 128

// wsClient is one Socket.IO client over WebSocket, connected to the main namespace.
type wsClient struct {
	conn  *websocket.Conn
	wmu   sync.Mutex // one writer at a time: the reader answers pings, the load sends events
	ackID atomic.Uint64
	done  chan struct{}
}

// dialWS opens an Engine.IO WebSocket session and connects to the namespace "/".
func dialWS(ctx context.Context, src *sources, url string) (*wsClient, error) {
	conn, _, err := src.wsDial[src.pick()].DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetReadDeadline(deadline)
	fail := func(err error) (*wsClient, error) {
		conn.Close()
		return nil, err
	}
	_, msg, err := conn.ReadMessage()
	if err != nil {
		return fail(fmt.Errorf("read open packet: %w", err))
	}
	if len(msg) == 0 || msg[0] != '0' {
		return fail(fmt.Errorf("expected an open packet, got %.40q", msg))
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		return fail(fmt.Errorf("send CONNECT: %w", err))
	}
	for {
		_, msg, err = conn.ReadMessage()
		if err != nil {
			return fail(fmt.Errorf("read CONNECT reply: %w", err))
		}
		switch {
		case bytes.HasPrefix(msg, []byte("40")):
			_ = conn.SetReadDeadline(time.Time{})
			return &wsClient{conn: conn, done: make(chan struct{})}, nil
		case bytes.HasPrefix(msg, []byte("44")):
			return fail(fmt.Errorf("connection refused: %.80s", msg))
		case len(msg) == 1 && msg[0] == '2':
			if err := conn.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return fail(err)
			}
		}
	}
}

// readLoop reads until the connection ends, answering pings and handing message packets to h
// (nil: dropped). It closes c.done when it returns.
func (c *wsClient) readLoop(h handler) {
	defer close(c.done)
	var buf [headLen]byte
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			return
		}
		n, err := io.ReadFull(r, buf[:])
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		} else if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = nil
		}
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		switch buf[0] {
		case '2': // ping
			if c.write([]byte("3")) != nil {
				return
			}
		case '4':
			if h != nil {
				h(c, buf[1:n], time.Now())
			}
		}
	}
}

// write sends one text frame.
func (c *wsClient) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// close ends the connection and waits for the reader.
func (c *wsClient) close() {
	c.conn.Close()
	<-c.done
}

// connectWS connects n clients, parallel at a time, each running readLoop with h. It returns
// the connected clients, the failures (at most the first few errors) and how long it took.
func connectWS(ctx context.Context, src *sources, url string, n, parallel int, h handler) ([]*wsClient, int, []error, time.Duration) {
	clients := make([]*wsClient, n)
	var failed atomic.Int64
	var emu sync.Mutex
	var errs []error
	next := atomic.Int64{}
	start := time.Now()
	var wg sync.WaitGroup
	for range min(parallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := dialWS(ctx, src, url)
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
				go c.readLoop(h)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	out := clients[:0]
	for _, c := range clients {
		if c != nil {
			out = append(out, c)
		}
	}
	return out, int(failed.Load()), errs, elapsed
}

// closeAll closes the clients, parallel at a time.
func closeAll(clients []*wsClient) {
	var wg sync.WaitGroup
	ch := make(chan *wsClient)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				c.close()
			}
		}()
	}
	for _, c := range clients {
		ch <- c
	}
	close(ch)
	wg.Wait()
}

// parseInts reads up to len(out) comma-separated integers from b, stopping at the first
// byte that is neither a digit, '-' nor ','. It returns how many it read.
func parseInts(b []byte, out []int64) int {
	k := 0
	for k < len(out) {
		neg := len(b) > 0 && b[0] == '-'
		if neg {
			b = b[1:]
		}
		j := 0
		var v int64
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			v = v*10 + int64(b[j]-'0')
			j++
		}
		if j == 0 {
			return k
		}
		if neg {
			v = -v
		}
		out[k] = v
		k++
		if j >= len(b) || b[j] != ',' {
			return k
		}
		b = b[j+1:]
	}
	return k
}
