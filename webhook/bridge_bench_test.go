package webhook

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkEventWebhook measures the whole inbound path of a client event over loopback: the
// client's EVENT with an ack id is read, turned into a signed event webhook, POSTed to the app,
// whose reply's "ack" goes back to the client. Each op is one such round trip; clients
// sockets run them concurrently, one at a time each. The clients upgrade with the headers of a
// browser, since every event webhook carries the handshake.
func BenchmarkEventWebhook(b *testing.B) {
	for _, clients := range []int{1, 50} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { benchEventWebhook(b, clients, 1) })
	}
}

// dialBrowserLike opens a WebSocket session with a browser's request headers and joins "/".
func dialBrowserLike(b *testing.B, base string) *websocket.Conn {
	b.Helper()
	h := http.Header{}
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	h.Set("Accept-Language", "en-GB,en;q=0.9,fr;q=0.8")
	h.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	h.Set("Cache-Control", "no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Cookie", "session=0123456789abcdef0123456789abcdef; theme=dark")
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	c, _, err := websocket.DefaultDialer.Dial(u, h)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.WriteMessage(websocket.TextMessage, []byte(`40{"token":"abc"}`)); err != nil {
		b.Fatal(err)
	}
	for _, prefix := range []string{"0{", "40{"} {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := c.ReadMessage()
		if err != nil || !strings.HasPrefix(string(msg), prefix) {
			b.Fatalf("want %s..., got %q (%v)", prefix, msg, err)
		}
	}
	return c
}

// readAck reads until the ack want arrives, answering pings; anything else is an error.
func readAck(c *websocket.Conn, want string) error {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return err
		}
		switch string(msg) {
		case "2":
			if err := c.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return err
			}
		case want:
			return nil
		default:
			return fmt.Errorf("got %q, want %q", msg, want)
		}
	}
}
