package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/proxy"
)

// TestBrowserLegacyChat is examples/legacy as its README runs it: siobridge on
// examples/legacy/siobridge.toml (allow_eio3; the addresses, and the page's origin in
// cors_origins, set for the test) in front of this app; the 2.x page (examples/legacy/index.html,
// with the 2.x bundle as socket.io-2.js beside it) from an origin of its own, on JSONP polling,
// and the 4.x demo page through siobridge. They chat both ways, in public and in a room.
func TestBrowserLegacyChat(t *testing.T) {
	chromium := testkit.RequireTool(t, "chromium")
	if _, ok := proxy.ClientBundle(); !ok {
		t.Fatal("the socket.io-client bundle is missing from proxy/clientdist, so siobridge would answer 404 for /socket.io/socket.io.js: run `make bundle` (or `make deps`)")
	}
	modules := testkit.RequireNodeModules(t, testkit.InteropNode, "socket.io-client-v2")

	// What the README's cp and python3 -m http.server do.
	legacy := testkit.RootDir(t, "examples/legacy")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, legacy+"/index.html")
	})
	mux.HandleFunc("GET /socket.io-2.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, modules+"/socket.io-client-v2/dist/socket.io.js")
	})
	pages := httptest.NewServer(mux)
	t.Cleanup(pages.Close)

	app := httptest.NewServer(newApp(testSecret)) // closed after siobridge: its shutdown sends disconnects
	t.Cleanup(app.Close)
	sb := testkit.StartSiobridge(t, testkit.Command{
		Args: []string{siobridge.Path(t), "-config", legacy + "/siobridge.toml"},
		Env: []string{
			"SIOBRIDGE_SERVER_UPSTREAM=" + app.URL,
			"SIOBRIDGE_WEBHOOK_URL=" + app.URL + "/webhook",
			"SIOBRIDGE_WEBHOOK_SECRET=" + testSecret,
			"SIOBRIDGE_SOCKETIO_CORS_ORIGINS=" + pages.URL,
		},
	})
	server := "http://" + sb.Public

	browser := testkit.StartBrowser(t, chromium, browserTestTimeout)
	v2 := openPage(t, browser, "v2", pages.URL+"/?server="+server)
	v4 := openPage(t, browser, "v4", server+"/")
	if status := v2.text("#status"); !strings.HasSuffix(status, " over JSONP polling") {
		t.Errorf("the 2.x page's status %q", status)
	}
	for _, p := range []*tab{v2, v4} {
		p.waitLine("server: welcome, " + p.name())
	}

	v2.send("hello from 2.x", "")
	v4.waitLine(v2.name() + ": hello from 2.x")
	v4.send("hi from 4.x", "")
	v2.waitLine(v4.name() + ": hi from 4.x")

	for _, p := range []*tab{v2, v4} {
		p.room("join", "tea")
		p.waitLine("rooms: " + p.id + ", tea")
	}
	v4.send("tea time", "tea")
	v2.waitLine("[tea] " + v4.name() + ": tea time")
	v2.send("tea for two", "tea")
	v4.waitLine("[tea] " + v2.name() + ": tea for two")
	v2.room("leave", "tea")
	v2.waitLine("rooms: " + v2.id)
	v4.send("anyone?", "tea")
	v4.send("bye", "")
	v2.waitLine(v4.name() + ": bye")

	v2.wantLog(
		"server: welcome, "+v2.name(),
		"me: hello from 2.x",
		v4.name()+": hi from 4.x",
		"rooms: "+v2.id+", tea",
		"[tea] "+v4.name()+": tea time",
		"me: tea for two",
		"rooms: "+v2.id,
		v4.name()+": bye",
	)
}
