package socketio

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkBroadcast measures Namespace.Emit to every socket of a namespace, over real
// WebSocket connections on loopback: the packet is encoded and framed once and the same bytes
// are written to every receiver. Each op is burst broadcasts back to back, then waits until all
// receivers have all of them: with burst > 1 a receiver's writer finds several frames queued
// and writes them in one writev. With recovery on, each broadcast is also stored with its
// offset, and queued under the store's lock.
func BenchmarkBroadcast(b *testing.B) {
	for _, bc := range []struct {
		receivers, burst int
		recovery         bool
	}{{10, 1, false}, {100, 1, false}, {1000, 1, false}, {1000, 20, false}, {10, 1, true}, {100, 1, true}, {1000, 1, true}} {
		receivers, burst := bc.receivers, bc.burst
		name := fmt.Sprintf("receivers=%d/burst=%d", receivers, burst)
		opts := Options{}
		if bc.recovery {
			name += "/recovery"
			opts.Recovery.MaxDisconnection = time.Minute
		}
		b.Run(name, func(b *testing.B) {
			srv := NewServer(opts)
			ts := httptest.NewServer(srv)
			defer ts.Close()
			defer srv.Close()
			connected := make(chan struct{}, receivers)
			srv.Of("/").OnConnect(func(*Socket) { connected <- struct{}{} })

			u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
			var wg sync.WaitGroup
			got := make(chan struct{}, receivers*64)
			conns := make([]*websocket.Conn, receivers)
			for i := range conns {
				c, _, err := websocket.DefaultDialer.Dial(u, nil)
				if err != nil {
					b.Fatal(err)
				}
				conns[i] = c
				_, _, _ = c.ReadMessage() // open
				_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
				_, _, _ = c.ReadMessage() // connect reply
				<-connected
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						_, msg, err := c.ReadMessage()
						if err != nil {
							return
						}
						switch {
						case len(msg) == 1 && msg[0] == '2':
							// Answer pings: a long run outlasts ping_interval + ping_timeout.
							if c.WriteMessage(websocket.TextMessage, []byte("3")) != nil {
								return
							}
						case len(msg) > 1 && msg[0] == '4':
							got <- struct{}{}
						}
					}
				}()
			}
			payload := map[string]any{"text": strings.Repeat("x", 1024)}
			stall := time.NewTimer(time.Minute) // bounds each op's wait, reset without allocating
			defer stall.Stop()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for range burst {
					n, err := srv.Of("/").Emit("news", payload)
					if err != nil || n != receivers {
						b.Fatalf("emit reached %d: %v", n, err)
					}
				}
				stall.Reset(time.Minute)
				for range receivers * burst {
					select {
					case <-got:
					case <-stall.C:
						b.Fatalf("a receiver has not had broadcast %d after a minute", i)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*receivers*burst)/b.Elapsed().Seconds(), "deliveries/s")
			for _, c := range conns {
				c.Close()
			}
			wg.Wait()
		})
	}
}

// BenchmarkSelectRoom measures a namespace choosing the receivers of a room broadcast with an
// except list, among 10000 sockets.
func BenchmarkSelectRoom(b *testing.B) {
	srv := NewServer(Options{})
	b.Cleanup(srv.Close)
	ns := newNamespace(srv, "/")
	for i := range 10000 {
		var rooms []string
		if i%10 == 0 {
			rooms = []string{"room"}
		}
		ns.add(&Socket{id: fmt.Sprintf("s%05d", i), ns: ns}, rooms)
	}
	opts := BroadcastOptions{Rooms: []string{"room"}, Except: []string{"s00000"}}
	b.ReportAllocs()
	for b.Loop() {
		if n := len(ns.rooms.selectSockets(opts)); n != 999 {
			b.Fatalf("selected %d", n)
		}
	}
}

// BenchmarkRecoveryStore measures what recovery adds to a broadcast, without the network: a
// namespace with no sockets, where an emit without recovery stops once its arguments are
// encoded, and with recovery also appends the offset, encodes the packet and stores it; the
// store is full, so each op also drops the oldest packet.
func BenchmarkRecoveryStore(b *testing.B) {
	for _, recovery := range []bool{false, true} {
		b.Run(fmt.Sprintf("recovery=%v", recovery), func(b *testing.B) {
			opts := Options{}
			if recovery {
				opts.Recovery = RecoveryOptions{MaxDisconnection: time.Minute, MaxPackets: 1000}
			}
			srv := NewServer(opts)
			b.Cleanup(srv.Close)
			ns := srv.Of("/")
			payload := map[string]any{"text": strings.Repeat("x", 1024)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ns.Emit("news", payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
