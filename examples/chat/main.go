// Command chat is the demo app behind siobridge: it serves the chat page and answers
// siobridge's webhooks with actions, so the chat needs no Socket.IO library and no second
// round trip. `make demo` runs it with siobridge in front (see run.sh and siobridge.toml).
//
// Events the page sends and what the app answers:
//
//	sendMsg(text, room)  → reviceMsg({from, text, room}) to the room (or everyone), not the sender; ack "sent"
//	joinRoom(room)       → join the room; ack with the socket's rooms
//	leaveRoom(room)      → leave the room; ack with the socket's rooms
package main

import (
	"embed"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/siobridge/siobridge/webhook"
)

//go:embed index.html
var page embed.FS

func main() {
	listen := flag.String("listen", "127.0.0.1:3000", "address to listen on")
	secret := flag.String("secret", "", "webhook signing secret shared with siobridge (webhook.secret)")
	flag.Parse()
	slog.Info("chat app listening", "addr", *listen)
	if err := http.ListenAndServe(*listen, newApp(*secret)); err != nil {
		slog.Error("chat app", "err", err)
		os.Exit(1)
	}
}

func newApp(secret string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(page))
	mux.Handle("POST /webhook", &hooks{secret: secret})
	return mux
}

// hooks answers siobridge's webhooks.
type hooks struct{ secret string }

// message is what reviceMsg carries.
type message struct {
	From string `json:"from"`
	Text string `json:"text"`
	Room string `json:"room,omitempty"`
}

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if h.secret != "" {
		if err := webhook.Verify(h.secret, r.Header.Get("X-Siobridge-Signature"), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	reply := h.handle(&p)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(reply)
}

// reply is the subset of webhook.Actions the chat uses.
type reply struct {
	Data  any              `json:"data,omitempty"`
	Join  []string         `json:"join,omitempty"`
	Leave []string         `json:"leave,omitempty"`
	Ack   []any            `json:"ack,omitempty"`
	Emit  []map[string]any `json:"emit,omitempty"`
}

func (h *hooks) handle(p *webhook.Payload) reply {
	id := p.Socket.ID
	switch p.Type {
	case webhook.KindConnect:
		name := "guest-" + id[:4]
		return reply{
			Data: map[string]string{"name": name},
			Emit: []map[string]any{{"event": "reviceMsg", "to": []string{id}, "args": []any{message{From: "server", Text: "welcome, " + name}}}},
		}
	case webhook.KindEvent:
		var args []json.RawMessage
		_ = json.Unmarshal(p.Args, &args)
		str := func(i int) string {
			var s string
			if i < len(args) {
				_ = json.Unmarshal(args[i], &s)
			}
			return s
		}
		var data struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(p.Socket.Data, &data)
		switch p.Event {
		case "sendMsg":
			text, room := str(0), str(1)
			emit := map[string]any{"event": "reviceMsg", "except": []string{id}, "args": []any{message{From: data.Name, Text: text, Room: room}}}
			if room != "" {
				emit["to"] = []string{room}
			}
			return reply{Emit: []map[string]any{emit}, Ack: []any{"sent"}}
		case "joinRoom":
			room := str(0)
			if room == "" {
				return reply{Ack: []any{p.Socket.Rooms}}
			}
			rooms := p.Socket.Rooms
			if !slices.Contains(rooms, room) {
				rooms = append(rooms, room)
			}
			return reply{Join: []string{room}, Ack: []any{rooms}}
		case "leaveRoom":
			room := str(0)
			rooms := slices.DeleteFunc(slices.Clone(p.Socket.Rooms), func(r string) bool { return r == room })
			return reply{Leave: []string{room}, Ack: []any{rooms}}
		}
	case webhook.KindDisconnect:
		slog.Info("chat: left", "socket", id, "reason", p.Reason)
	}
	return reply{}
}
