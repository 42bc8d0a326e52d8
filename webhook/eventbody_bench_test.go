package webhook

import (
	"encoding/json"
	"testing"

	"github.com/siobridge/siobridge/socketio"
)

var benchBody []byte

// BenchmarkEventBody measures writing the body of one event webhook, the one sent for every
// client event, with a browser's handshake already encoded (as it is after a socket's first
// event).
func BenchmarkEventBody(b *testing.B) {
	hs, err := json.Marshal(&socketio.Handshake{
		Address: "203.0.113.7",
		Headers: map[string]string{
			"user-agent":      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
			"accept-language": "en-GB,en;q=0.9,fr;q=0.8",
		},
		Query: map[string]string{"EIO": "4", "transport": "websocket"},
		Auth:  json.RawMessage(`{"token":"abc"}`),
		Time:  "2026-11-27T03:40:00.000Z", Issued: 1795750800000,
		URL: "/socket.io/?EIO=4&transport=websocket",
	})
	if err != nil {
		b.Fatal(err)
	}
	rooms := []string{"Zx2Pq7Lm9Nb4Vc1Xa8Sd", "lobby", "team:blue"}
	data := json.RawMessage(`{"user":"bob"}`)
	args := json.RawMessage(`[{"room":"lobby","text":"hello there, how are you?","n":42}]`)
	b.ReportAllocs()
	for b.Loop() {
		benchBody = appendEventBody(nil, "MZXW6YTBOI2DKNRXHA3DAMJSGM", "/chat", "Zx2Pq7Lm9Nb4Vc1Xa8Sd", rooms, data, hs, "chat", args, true)
	}
}
