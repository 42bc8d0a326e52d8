package handlers_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/webhook"
)

// TestHandlersBatched runs each example handler behind siobridge with batched event webhooks
// (webhook.batch_max): a signed batch sent straight to the handler gets an array of replies in
// order, and clients that chat at once through siobridge get every ack, in order, and every
// other client's chats in the order they were sent, with fewer POSTs than events.
func TestHandlersBatched(t *testing.T) {
	node := testkit.RequireTool(t, "node")
	nodePath := testkit.RequireNodeModules(t, testkit.InteropNode, "socket.io-client")
	tools := map[string]string{"node": node, "python3": testkit.RequireTool(t, "python3")}
	bin := siobridge.Path(t)
	for _, h := range handlers {
		t.Run(h.name, func(t *testing.T) { testHandlerBatched(t, bin, tools[h.tool], h.script, node, nodePath) })
	}
}

func testHandlerBatched(t *testing.T, bin, tool, script, node, nodePath string) {
	handler := testkit.Start(t, testkit.Command{
		Name: script,
		Args: []string{tool, script},
		Env:  []string{"PORT=0", "SIOBRIDGE_WEBHOOK_SECRET=" + secret},
	})
	m := handler.Stdout.Match(t, regexp.MustCompile(`^listening on (\d+)$`), "its `listening on <port>` line")
	hookURL := "http://127.0.0.1:" + m[1] + "/siobridge"

	t.Run("signed batch", func(t *testing.T) {
		batch := []byte(`[{"id":"BATCHCHAT1","type":"event","namespace":"/","socket":{"id":"S1","rooms":["S1","lobby"],"data":null},"event":"chat","args":["one"],"ack":true},` +
			`{"id":"BATCHOTHER","type":"event","namespace":"/","socket":{"id":"S2","rooms":["S2"],"data":null},"event":"other","args":[],"ack":false},` +
			`{"id":"BATCHCHAT2","type":"event","namespace":"/","socket":{"id":"S1","rooms":["S1","lobby"],"data":null},"event":"chat","args":["two"],"ack":true}]`)
		want := `[{"ack":["ok"],"emit":[{"event":"chat","args":["one"],"to":["lobby"],"except":["S1"]}]},{},` +
			`{"ack":["ok"],"emit":[{"event":"chat","args":["two"],"to":["lobby"],"except":["S1"]}]}]`
		status, body := postBatch(t, hookURL, batch, webhook.Sign(secret, time.Now(), batch))
		if status != 200 || !jsonEqual(body, []byte(want)) {
			t.Errorf("%d %s, want 200 %s", status, body, want)
		}
		if status, _ := postBatch(t, hookURL, batch, webhook.Sign("not-"+secret, time.Now(), batch)); status != 401 {
			t.Errorf("a batch signed with another secret: status %d, want 401", status)
		}
	})

	t.Run("clients", func(t *testing.T) {
		const clients, chats = 4, 25
		clientsJS := filepath.Join(t.TempDir(), "batch-clients.js")
		if err := os.WriteFile(clientsJS, []byte(batchClientsScript), 0o644); err != nil {
			t.Fatal(err)
		}
		sb := testkit.StartSiobridge(t, testkit.Command{
			Args: []string{bin},
			Env: []string{"SIOBRIDGE_WEBHOOK_URL=" + hookURL, "SIOBRIDGE_WEBHOOK_SECRET=" + secret,
				"SIOBRIDGE_WEBHOOK_BATCH_MAX=32", "SIOBRIDGE_WEBHOOK_BATCH_WAIT=20ms"},
		})
		run := testkit.Start(t, testkit.Command{
			Name: "batch-clients.js",
			Args: []string{node, clientsJS, "http://" + sb.Public, strconv.Itoa(clients), strconv.Itoa(chats)},
			Env:  []string{"NODE_PATH=" + nodePath},
		})
		if err := run.Wait(waitFor); err != nil {
			t.Fatalf("batch-clients.js: %v", err)
		}
		acks := map[int][]int{}   // client → the chat numbers acked, in the order acked
		got := map[[2]int][]int{} // [receiver, sender] → the chat numbers received, in order
		for _, line := range run.Stdout.All() {
			var o struct {
				Client int
				Ack    []string
				Chat   int
				Event  string
				Args   []int
			}
			if json.Unmarshal([]byte(line), &o) != nil {
				continue
			}
			switch {
			case o.Ack != nil:
				if len(o.Ack) != 1 || o.Ack[0] != "ok" {
					t.Errorf("client %d, chat %d: ack %v, want [ok]", o.Client, o.Chat, o.Ack)
				}
				acks[o.Client] = append(acks[o.Client], o.Chat)
			case o.Event == "chat" && len(o.Args) == 2:
				k := [2]int{o.Client, o.Args[0]}
				got[k] = append(got[k], o.Args[1])
			}
		}
		want := make([]int, chats)
		for i := range want {
			want[i] = i
		}
		for c := range clients {
			if fmt.Sprint(acks[c]) != fmt.Sprint(want) {
				t.Errorf("client %d's acks came for the chats %v, want %v", c, acks[c], want)
			}
			for s := range clients {
				if s != c && fmt.Sprint(got[[2]int{c, s}]) != fmt.Sprint(want) {
					t.Errorf("client %d got client %d's chats %v, want %v", c, s, got[[2]int{c, s}], want)
				}
				if s == c && len(got[[2]int{c, s}]) > 0 {
					t.Errorf("client %d got its own chats back", c)
				}
			}
		}
		posts := metric(t, "http://"+sb.API+"/metrics", `siobridge_webhook_attempts_total{kind="event"}`)
		if posts <= 0 || posts >= clients*chats {
			t.Errorf("%v POSTs of event webhooks for %d events: want fewer, in batches", posts, clients*chats)
		}
	})
}

// postBatch POSTs a batch to the handler, signed with sig, and returns its answer.
func postBatch(t *testing.T, hookURL string, body []byte, sig string) (int, []byte) {
	t.Helper()
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(webhook.HeaderType, "batch")
	h.Set(webhook.HeaderSignature, sig)
	res := testkit.Do(t, http.DefaultClient, http.MethodPost, hookURL, string(body), h)
	return res.Status, []byte(res.Body)
}

// metric reads one series' value from a Prometheus text page.
func metric(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("%s has no series %s", url, series)
	return 0
}

// batchClientsScript connects argv[3] socket.io-client clients to the URL in argv[2]; once
// all are in, each emits argv[4] chats at once, [client, n] with an ack callback, and prints
// each ack and each chat it gets as a JSON line. It exits 0 when every client has every ack
// and every other client's chats.
const batchClientsScript = `"use strict";
const { io } = require("socket.io-client");
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
setTimeout(() => { console.error("batch-clients.js: gave up after 20s"); process.exit(2); }, 20000).unref();
const [url, n, chats] = [process.argv[2], +process.argv[3], +process.argv[4]];
let connected = 0, left = n * chats + n * (n - 1) * chats;
const done = () => { if (--left === 0) { sockets.forEach((s) => s.close()); } };
const sockets = Array.from({ length: n }, (_, c) => {
  const s = io(url, { reconnection: false, transports: ["websocket"] });
  s.on("connect", () => {
    if (++connected < n) return;
    sockets.forEach((s, c) => {
      for (let i = 0; i < chats; i++) s.emit("chat", c, i, (...args) => { out({ client: c, chat: i, ack: args }); done(); });
    });
  });
  s.on("connect_error", (err) => { console.error("client " + c + ": " + err.message); process.exit(1); });
  s.on("chat", (...args) => { out({ client: c, event: "chat", args }); done(); });
  return s;
});
`
