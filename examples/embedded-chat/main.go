// Command embedded-chat is a chat room served by siobridge's protocol core embedded in a Go
// program: the socketio package used as a library, no webhooks. Run it from the repository root
// after `make deps` (which installs the socket.io-client bundle it serves):
//
//	go run ./examples/embedded-chat -listen 127.0.0.1:7896
//
// then open http://127.0.0.1:7896 in two browser tabs.
package main

import (
	"embed"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/siobridge/siobridge/socketio"
)

//go:embed index.html
var page embed.FS

func main() {
	listen := flag.String("listen", "127.0.0.1:7896", "address to listen on")
	bundleDir := flag.String("client-dist", "socketio/testdata/interop/node_modules/socket.io-client/dist",
		"directory holding socket.io-client's dist files (socket.io.js ...)")
	flag.Parse()
	if err := run(*listen, *bundleDir); err != nil {
		fmt.Fprintln(os.Stderr, "embedded-chat:", err)
		os.Exit(1)
	}
}

func run(listen, bundleDir string) error {
	if _, err := os.Stat(filepath.Join(bundleDir, "socket.io.min.js")); err != nil {
		return fmt.Errorf("the socket.io-client bundle is missing in %s: run `make deps` first (%v)", bundleDir, err)
	}
	srv := socketio.NewServer(socketio.Options{})
	defer srv.Close()
	chat := srv.Of("/")
	chat.OnConnect(func(s *socketio.Socket) {
		name := "guest-" + s.ID()[:4]
		_ = s.Emit("reviceMsg", map[string]string{"from": "server", "text": "welcome, " + name})
		s.On("sendMsg", func(e *socketio.Event) {
			args, err := e.Decode()
			if err != nil || len(args) == 0 {
				return
			}
			text, _ := args[0].(string)
			room := ""
			if len(args) > 1 {
				room, _ = args[1].(string)
			}
			msg := map[string]string{"from": name, "text": text, "room": room}
			if room != "" {
				_, _ = s.To(room).Emit("reviceMsg", msg)
			} else {
				_, _ = s.Broadcast().Emit("reviceMsg", msg)
			}
			_ = e.Ack("sent")
		})
		s.On("joinRoom", func(e *socketio.Event) {
			if args, err := e.Decode(); err == nil && len(args) > 0 {
				if room, ok := args[0].(string); ok && room != "" {
					s.Join(room)
					_ = e.Ack(s.Rooms())
				}
			}
		})
		s.On("leaveRoom", func(e *socketio.Event) {
			if args, err := e.Decode(); err == nil && len(args) > 0 {
				if room, ok := args[0].(string); ok && room != s.ID() {
					s.Leave(room)
					_ = e.Ack(s.Rooms())
				}
			}
		})
	})

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", clientBundle(bundleDir, srv))
	mux.Handle("/", http.FileServerFS(page))
	slog.Info("embedded-chat listening", "url", "http://"+listen)
	return http.ListenAndServe(listen, mux)
}

// clientBundle serves socket.io-client's files at /socket.io/<name>.js and hands everything
// else under /socket.io/ to the Socket.IO server.
func clientBundle(dir string, next http.Handler) http.Handler {
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/socket.io/")
		if r.Method == http.MethodGet && strings.HasPrefix(name, "socket.io.") && !strings.Contains(name, "/") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + name
			files.ServeHTTP(w, r2)
			return
		}
		next.ServeHTTP(w, r)
	})
}
