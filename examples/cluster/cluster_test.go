// Package cluster_test runs the example of this directory as run.sh does, on free loopback
// ports: a redis-server, two siobridge nodes from node1.toml and node2.toml, and Debian's nginx
// from nginx.conf in front of them. Real socket.io-client clients (clients.js) connect through
// nginx, one on long-polling only, one on WebSocket only, one that starts on long-polling and
// upgrades, and a second long-polling one that sends no sticky key (and more long-polling ones
// when nginx put those four on one node); an app of the test's own answers the nodes' webhooks.
//
// It needs redis-server, nginx, node and socket.io-client installed by `make deps`, and fails
// (rather than skips) without them.
package cluster_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/webhook"
)

const (
	// wait bounds one wait for something that should happen.
	wait   = 15 * time.Second
	secret = "cluster-example-secret"
)

// The loopback addresses of run.sh, which the test replaces with free ones.
const (
	nginxAddr = "127.0.0.1:7900"
	node1Addr = "127.0.0.1:7901"
	node2Addr = "127.0.0.1:7902"
)

// siobridge is the binary the nodes run, built once.
var siobridge testkit.Binary

func TestMain(m *testing.M) { os.Exit(siobridge.Run(m)) }

func TestCluster(t *testing.T) {
	nginxBin := testkit.RequireTool(t, "nginx")
	nodeBin := testkit.RequireTool(t, "node")
	nodePath := testkit.RequireNodeModules(t, testkit.InteropNode, "socket.io-client")
	conf, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}

	bin := siobridge.Path(t)
	// The example runs with any adapter (run.sh's CLUSTER_ADAPTER): the same clients through
	// the same nginx on each, each on a Redis of its own. The files' adapter is the first.
	for i, adapter := range adapters {
		t.Run(adapter, func(t *testing.T) {
			r := testkit.StartRedis(t)
			app := startApp(t)
			nodes := []*node{
				startNode(t, bin, "node1", adapter, app, r),
				startNode(t, bin, "node2", adapter, app, r),
			}
			for _, n := range nodes {
				// Ready once subscribed to Redis.
				n.AwaitReady(t, wait, http.StatusOK)
			}
			sticky := startNginx(t, nginxBin, string(conf), nodes, false)
			t.Run("sticky", func(t *testing.T) { testSticky(t, nodeBin, nodePath, sticky, app, nodes) })
			if i == 0 {
				// Balancing is the adapter's business on none of them: once is enough.
				t.Run("without stickiness", func(t *testing.T) {
					// The same file with round-robin balancing: a long-polling session's
					// requests go to both nodes, and the one that does not hold the session
					// refuses them.
					roundRobin := startNginx(t, nginxBin, string(conf), nodes, true)
					cl := startClients(t, nodeBin, nodePath, "http://"+roundRobin.addr)
					cl.open(t, "polling", map[string]any{"transports": []string{"polling"}})
					m := cl.expect(t, "polling", "error")
					if !strings.Contains(m.Body, "Session ID unknown") {
						t.Fatalf("without stickiness the polling client's error is %+v, want a refused request with Session ID unknown", m)
					}
					t.Logf("without stickiness the polling client got %q (%s): %s", m.Message, m.Description, m.Body)
				})
			}
		})
	}
}

// adapters are the cluster adapters the example runs with, node1.toml's first.
var adapters = []string{"redis", "redis-sharded", "redis-streams"}

// testSticky connects clients of every transport through nginx's sticky balancing and checks
// that each keeps to one node, and that emits and metrics span the cluster.
func testSticky(t *testing.T, nodeBin, nodePath string, sticky *nginx, app *app, nodes []*node) {
	cl := startClients(t, nodeBin, nodePath, "http://"+sticky.addr)
	// The sticky key is the query parameter "sticky" when a client sends one, else its
	// address: every client here comes from 127.0.0.1.
	cl.open(t, "polling", map[string]any{"transports": []string{"polling"}, "query": map[string]string{"sticky": "polling-client"}})
	cl.open(t, "websocket", map[string]any{"transports": []string{"websocket"}, "query": map[string]string{"sticky": "websocket-client"}})
	cl.open(t, "upgrade", map[string]any{"query": map[string]string{"sticky": "upgrade-client"}})
	cl.open(t, "polling-by-address", map[string]any{"transports": []string{"polling"}})
	names := []string{"polling", "websocket", "upgrade", "polling-by-address"}
	transports := map[string]string{"polling": "polling", "websocket": "websocket", "upgrade": "websocket", "polling-by-address": "polling"}
	ids := map[string]string{}
	for _, name := range names {
		ids[name] = cl.expect(t, name, "connect").ID
	}
	if m := cl.expect(t, "upgrade", "open"); m.Transport != "polling" {
		t.Fatalf("the default client opened its session over %q, want polling", m.Transport)
	}
	if m := cl.expect(t, "upgrade", "upgrade"); m.Transport != "websocket" {
		t.Fatalf("the default client upgraded to %q, want websocket", m.Transport)
	}

	// An event from a client completes the round trip: the client's POST (or frame)
	// reaches its node, whose webhook's reply acks through the same session with the
	// node's name.
	seq := 0
	ping := func(name string, round int) string {
		t.Helper()
		seq++
		cl.emit(t, name, "ping", seq, round)
		ack := cl.expectAck(t, name, seq)
		if len(ack.Args) != 2 || ack.Args[0] != "pong" || (ack.Args[1] != nodes[0].name && ack.Args[1] != nodes[1].name) {
			t.Fatalf("client %s: ack %v, want [pong <node>]", name, ack.Args)
		}
		return ack.Args[1].(string)
	}
	placement := map[string]string{}
	for _, name := range names {
		placement[name] = ping(name, 0)
	}
	// nginx hashes the sticky keys onto a ring made of the nodes' addresses, free ports
	// that change from run to run; now and then all four keys land on one node, and then
	// nothing here would tell sticky sessions from a single node. Long-polling clients
	// with keys of their own join until both nodes have a client.
	const maxExtra = 16 // all of them on one node: about 2^-16 with a working hash
	onBoth := func() bool {
		used := map[string]bool{}
		for _, n := range placement {
			used[n] = true
		}
		return len(used) == len(nodes)
	}
	for extra := 1; !onBoth(); extra++ {
		if extra > maxExtra {
			t.Fatalf("nginx placed all %d clients, each but one with a sticky key of its own, on one node: %v", len(names), placement)
		}
		name := fmt.Sprintf("extra-%d", extra)
		cl.open(t, name, map[string]any{"transports": []string{"polling"}, "query": map[string]string{"sticky": name + "-client"}})
		ids[name] = cl.expect(t, name, "connect").ID
		names = append(names, name)
		transports[name] = "polling"
		placement[name] = ping(name, 0)
	}
	t.Logf("nginx placed the clients on: %v", placement)

	// Every later event of a client reaches the same node, and so do its webhooks.
	for round := 1; round < 10; round++ {
		for _, name := range names {
			if node := ping(name, round); node != placement[name] {
				t.Fatalf("client %s: round %d acked by %s, round 0 by %s", name, round, node, placement[name])
			}
		}
	}
	for _, name := range names {
		if node := app.nodeOf(t, ids[name]); node != placement[name] {
			t.Errorf("client %s: webhooks from %s, acks from %s", name, node, placement[name])
		}
	}

	// POST /emit on either node's API reaches every client, whichever node it is on: each
	// client gets at least one of the two through Redis.
	for _, n := range nodes {
		n.emit(t, `{"event":"news","args":["from `+n.name+`"]}`)
		for _, name := range names {
			m := cl.expect(t, name, "event")
			want := transports[name]
			if m.Event != "news" || len(m.Args) != 1 || m.Args[0] != "from "+n.name || m.Transport != want {
				t.Fatalf("client %s got %+v, want news [from %s] over %s", name, m, n.name, want)
			}
		}
	}

	// The nodes' metrics agree on where the clients are and on which transport.
	byTransport, wantByTransport := map[string]float64{}, map[string]float64{}
	for _, n := range nodes {
		for _, tr := range []string{"polling", "websocket"} {
			byTransport[tr] += n.metric(t, fmt.Sprintf(`siobridge_connections{namespace="/",protocol="4",transport=%q}`, tr))
		}
	}
	for _, tr := range transports {
		wantByTransport[tr]++
	}
	if !maps.Equal(byTransport, wantByTransport) {
		t.Fatalf("siobridge_connections over both nodes: %v, want %v", byTransport, wantByTransport)
	}

	// No session broke, and nginx sent every request of a session to one node.
	cl.noTrouble(t)
	sticky.checkSticky(t)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// awaitListen waits until p accepts connections on addr; the test fails if it exits first.
func awaitListen(t *testing.T, p *testkit.Process, addr string) {
	t.Helper()
	testkit.Poll(t, wait, p.Name()+" to listen on "+addr, func() bool {
		select {
		case <-p.Exited():
			t.Fatalf("%s exited: %v\n%s", p.Name(), p.Err(), p.Output())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// ---- the app ----

// app answers the nodes' webhooks (each node posts to /webhook/<its name>): it admits every
// client, acks "ping" events with ["pong", <node>], and remembers which node each socket is on.
type app struct {
	ts *httptest.Server

	problems *testkit.Problems

	mu    sync.Mutex
	nodes map[string]string // socket id → node
}

func startApp(t *testing.T) *app {
	t.Helper()
	a := &app{nodes: map[string]string{}, problems: testkit.NewProblems(t, "app")}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhook/{node}", a.hook)
	a.ts = httptest.NewServer(mux)
	t.Cleanup(a.ts.Close)
	return a
}

func (a *app) hook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if err := webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		a.problems.Add("webhook refused: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	node := r.PathValue("node")
	a.mu.Lock()
	if prev, ok := a.nodes[p.Socket.ID]; ok && prev != node {
		a.problems.Add("socket %s: webhooks from %s and %s", p.Socket.ID, prev, node)
	}
	a.nodes[p.Socket.ID] = node
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if p.Type == "event" && p.Event == "ping" {
		_ = json.NewEncoder(w).Encode(map[string]any{"ack": []string{"pong", node}})
	}
}

// nodeOf returns the node whose webhooks carried socket id.
func (a *app) nodeOf(t *testing.T, id string) string {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	n, ok := a.nodes[id]
	if !ok {
		t.Fatalf("no webhook came for socket %s", id)
	}
	return n
}

// ---- siobridge nodes ----

type node struct {
	*testkit.Siobridge
	name string
	http *http.Client
}

// startNode runs siobridge with examples/cluster/<name>.toml; the environment moves its
// listeners to free ports and its upstream and webhooks to the test's app, and points it at
// the test's Redis and adapter, as run.sh's CLUSTER_ADAPTER does. The rest ([cluster] key
// prefix and request timeout) is the file's.
func startNode(t *testing.T, bin, name, adapter string, a *app, r *testkit.Redis) *node {
	t.Helper()
	return &node{
		Siobridge: testkit.StartSiobridge(t, testkit.Command{
			Name: name,
			Args: []string{bin, "-config", name + ".toml"},
			Env: []string{
				"SIOBRIDGE_SERVER_UPSTREAM=" + a.ts.URL,
				"SIOBRIDGE_WEBHOOK_URL=" + a.ts.URL + "/webhook/" + name,
				"SIOBRIDGE_WEBHOOK_SECRET=" + secret,
				"SIOBRIDGE_CLUSTER_REDIS_URL=" + r.URL(),
				"SIOBRIDGE_CLUSTER_ADAPTER=" + adapter,
			},
		}),
		name: name,
		http: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: wait},
	}
}

func (n *node) emit(t *testing.T, body string) {
	t.Helper()
	resp, err := n.http.Post("http://"+n.API+"/emit", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST /emit on %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /emit on %s = %d %s", n.name, resp.StatusCode, b)
	}
}

// metric returns the value of one series of the node's /metrics.
func (n *node) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := n.http.Get("http://" + n.API + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics on %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s on %s: %v", series, n.name, err)
			}
			return f
		}
	}
	t.Fatalf("%s is not in %s's /metrics", series, n.name)
	return 0
}

// ---- nginx ----

type nginx struct {
	addr   string
	prefix string
}

// startNginx runs nginx with conf (nginx.conf) moved to free ports and the nodes' addresses,
// in the foreground, with everything it writes in a temporary prefix. roundRobin drops the
// hash directive, for the test of what happens without stickiness.
func startNginx(t *testing.T, bin, conf string, nodes []*node, roundRobin bool) *nginx {
	t.Helper()
	ng := &nginx{addr: freeAddr(t), prefix: t.TempDir()}
	for _, r := range []struct{ old, new string }{
		{"listen " + nginxAddr + ";", "listen " + ng.addr + ";"},
		{"server " + node1Addr + ";", "server " + nodes[0].Public + ";"},
		{"server " + node2Addr + ";", "server " + nodes[1].Public + ";"},
	} {
		if strings.Count(conf, r.old) != 1 {
			t.Fatalf("nginx.conf must contain %q once, as run.sh's addresses; the test replaces it", r.old)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	if roundRobin {
		hash := regexp.MustCompile(`(?m)^\s*hash \$siobridge_sticky_key consistent;\n`)
		if len(hash.FindAllString(conf, -1)) != 1 {
			t.Fatal("nginx.conf must contain the line `hash $siobridge_sticky_key consistent;` once")
		}
		conf = hash.ReplaceAllString(conf, "")
	}
	if err := os.Mkdir(filepath.Join(ng.prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(ng.prefix, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-p", ng.prefix + "/", "-c", path, "-e", "stderr"}
	if os.Geteuid() == 0 {
		// As root the workers would run as nobody, who cannot enter the test's directories.
		args = append(args, "-g", "user root;")
	}
	p := testkit.Start(t, testkit.Command{Name: "nginx", Args: append([]string{bin}, args...), Stop: syscall.SIGQUIT})
	awaitListen(t, p, ng.addr)
	return ng
}

var (
	accessRE = regexp.MustCompile(`"(GET|POST) (/socket\.io/\S*) HTTP/1\.1" (\d+) upstream=(\S+) key=`)
	sidRE    = regexp.MustCompile(`[?&]sid=([^&\s]+)`)
)

// checkSticky reads nginx's access log: every request of a session went to one node, and
// none was refused.
func (ng *nginx) checkSticky(t *testing.T) {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(ng.prefix, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	upstreams := map[string]map[string]bool{} // sid → nodes
	requests := 0
	for line := range strings.Lines(string(log)) {
		m := accessRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		requests++
		if m[3] != "200" && m[3] != "101" {
			t.Errorf("nginx log: a Socket.IO request answered %s: %s", m[3], line)
		}
		if sid := sidRE.FindStringSubmatch(m[2]); sid != nil {
			if upstreams[sid[1]] == nil {
				upstreams[sid[1]] = map[string]bool{}
			}
			upstreams[sid[1]][m[4]] = true
		}
	}
	if requests == 0 || len(upstreams) == 0 {
		t.Fatalf("nginx's access log shows no Socket.IO sessions:\n%s", log)
	}
	for sid, ups := range upstreams {
		if len(ups) != 1 {
			t.Errorf("nginx sent the requests of session %s to %d nodes: %v", sid, len(ups), ups)
		}
	}
	t.Logf("nginx's access log: %d Socket.IO requests, %d sessions each served by one node", requests, len(upstreams))
}

// ---- clients ----

// msg is one line of clients.js.
type msg struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	ID          string `json:"id"`
	Transport   string `json:"transport"`
	Event       string `json:"event"`
	Args        []any  `json:"args"`
	Seq         int    `json:"seq"`
	Reason      string `json:"reason"`
	Message     string `json:"message"`
	Description string `json:"description"`
	Body        string `json:"body"`
}

// clients is one clients.js process.
type clients struct {
	*testkit.Process
}

func startClients(t *testing.T, nodeBin, nodePath, url string) *clients {
	t.Helper()
	c := &clients{testkit.Start(t, testkit.Command{
		Name:      "clients.js",
		Args:      []string{nodeBin, "clients.js", url},
		Env:       []string{"NODE_PATH=" + nodePath},
		Stdin:     true, // clients.js closes its clients and exits when stdin ends
		CheckExit: true,
	})}
	c.expect(t, "", "ready")
	return c
}

func (c *clients) send(t *testing.T, cmd map[string]any) {
	t.Helper()
	c.SendJSON(t, cmd)
}

func (c *clients) open(t *testing.T, name string, opts map[string]any) {
	t.Helper()
	c.send(t, map[string]any{"cmd": "open", "name": name, "opts": opts})
}

func (c *clients) emit(t *testing.T, name, event string, seq int, args ...any) {
	t.Helper()
	c.send(t, map[string]any{"cmd": "emit", "name": name, "event": event, "seq": seq, "args": args})
}

// expect returns the first line of client name (kept back or new) of type typ; other lines
// are kept for later.
func (c *clients) expect(t *testing.T, name, typ string) msg {
	t.Helper()
	return c.expectMatch(t, fmt.Sprintf("%s from client %q", typ, name), func(m msg) bool { return m.Name == name && m.Type == typ })
}

func (c *clients) expectAck(t *testing.T, name string, seq int) msg {
	t.Helper()
	return c.expectMatch(t, fmt.Sprintf("the ack of emit %d of client %s", seq, name), func(m msg) bool {
		return m.Name == name && m.Type == "ack" && m.Seq == seq
	})
}

// expectMatch returns the first line (not yet expected) that match accepts; the others stay
// for later.
func (c *clients) expectMatch(t *testing.T, what string, match func(msg) bool) msg {
	t.Helper()
	return testkit.TakeJSON(t, c.Stdout, what, func(m msg) bool {
		if m.Type == "fatal" {
			t.Fatalf("clients.js: %s", m.Message)
		}
		return match(m)
	})
}

// noTrouble fails the test on any error, connect_error or disconnect printed so far.
func (c *clients) noTrouble(t *testing.T) {
	t.Helper()
	for _, line := range c.Stdout.Pending() {
		var m msg
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		switch m.Type {
		case "error", "connect_error", "disconnect":
			t.Errorf("client %s: %+v", m.Name, m)
		}
	}
}
