package config

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
)

const (
	examplePath = "../../config.example.toml"
	docsPath    = "../../docs/configuration.md"
	// testToken is an api.token long enough for a listener beyond loopback.
	testToken = "0123456789abcdef0123456789abcdef"
)

// writeConfig writes a config file into a test's temporary directory and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func dur(s string) Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return Duration{d}
}

// valueOf returns the value of a setting's field in c.
func valueOf(c *Config, key string) any {
	for i := range settings {
		if settings[i].key == key {
			return reflect.ValueOf(c).Elem().FieldByIndex(settings[i].index).Interface()
		}
	}
	panic("no setting " + key)
}

func TestDefaults(t *testing.T) {
	// The defaults the brief and the docs promise, key by key; every key must be listed.
	want := map[string]any{
		"server.listen":                        ":7896",
		"server.upstream":                      "",
		"server.trusted_proxies":               []string{},
		"server.shutdown_timeout":              dur("10s"),
		"api.listen":                           "127.0.0.1:7897",
		"api.token":                            "",
		"api.max_body_bytes":                   int64(1048576),
		"api.pprof":                            false,
		"socketio.path":                        "/socket.io/",
		"socketio.namespaces":                  []string{"/"},
		"socketio.max_dynamic_namespaces":      1000,
		"socketio.ping_interval":               dur("25s"),
		"socketio.ping_timeout":                dur("20s"),
		"socketio.connect_timeout":             dur("45s"),
		"socketio.upgrade_timeout":             dur("10s"),
		"socketio.max_payload":                 int64(1000000),
		"socketio.transports":                  []string{"polling", "websocket"},
		"socketio.cors_origins":                []string{},
		"socketio.cors_credentials":            false,
		"socketio.max_queued_messages":         4096,
		"socketio.recovery":                    OffDuration{},
		"socketio.recovery_max_packets":        10000,
		"socketio.recovery_max_bytes":          int64(67108864),
		"socketio.websocket_poller":            true,
		"socketio.polling_poller":              true,
		"socketio.allow_eio3":                  false,
		"webhook.url":                          "",
		"webhook.secret":                       "",
		"webhook.events":                       []string{"connect", "event", "disconnect"},
		"webhook.handshake_headers":            []string{"*"},
		"webhook.timeout":                      dur("5s"),
		"webhook.retry_for":                    dur("2m"),
		"webhook.connect_retry_for":            dur("5s"),
		"webhook.retries":                      0,
		"webhook.retry_wait_min":               dur("100ms"),
		"webhook.retry_wait_max":               dur("5s"),
		"webhook.concurrency":                  64,
		"webhook.queue_size":                   1000,
		"webhook.queue_max_bytes":              4 << 20,
		"webhook.batch_max":                    1,
		"webhook.batch_wait":                   dur("2ms"),
		"webhook.connect_on_error":             "refuse",
		"webhook.queue_full":                   "disconnect",
		"webhook.spool_dir":                    "",
		"webhook.spool_max_bytes":              int64(1 << 30),
		"webhook.spool_fsync":                  "interval",
		"cluster.adapter":                      "memory",
		"cluster.redis_url":                    "redis://127.0.0.1:6379/0",
		"cluster.redis_cluster":                []string{},
		"cluster.key_prefix":                   "socket.io",
		"cluster.request_timeout":              dur("5s"),
		"limits.max_connections":               100000,
		"limits.max_connections_per_ip":        0,
		"limits.handshakes_per_second_per_ip":  0,
		"limits.handshake_burst_per_ip":        0,
		"limits.events_per_second_per_socket":  100,
		"limits.event_burst_per_socket":        200,
		"limits.max_rooms_per_socket":          1000,
		"limits.max_namespaces_per_connection": 10,
		"limits.max_attachments":               10,
		"limits.max_tcp_connections":           0,
		"limits.max_tcp_connections_per_ip":    0,
		"server.max_header_bytes":              16384,
		"server.body_timeout":                  dur("30s"),
		"log.level":                            "info",
		"log.format":                           "text",
	}
	def := Default()
	for _, s := range settings {
		w, ok := want[s.key]
		if !ok {
			t.Errorf("%s: no expected default in this test", s.key)
			continue
		}
		if got := valueOf(&def, s.key); !reflect.DeepEqual(got, w) {
			t.Errorf("%s: default %#v, want %#v", s.key, got, w)
		}
	}
	if len(want) != len(settings) {
		t.Errorf("test lists %d keys, Config has %d", len(want), len(settings))
	}
	if err := def.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	got, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("Load(\"\", nil) = %+v, want the defaults", got)
	}
	// Each call has its own slices.
	a, b := Default(), Default()
	a.SocketIO.Namespaces[0] = "/changed"
	if b.SocketIO.Namespaces[0] != "/" {
		t.Error("Default shares slices between calls")
	}
}

func TestExampleFileIsDefaults(t *testing.T) {
	got, err := Load(examplePath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("config.example.toml differs from Default():\n got %+v\nwant %+v", got, Default())
	}
	// And it sets every key explicitly (a missing key would still load as its default).
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		if _, ok := doc[s.section][s.name]; !ok {
			t.Errorf("config.example.toml does not set %s", s.key)
		}
	}
	// Every key has a comment right above it.
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		if i == 0 || !strings.HasPrefix(lines[i-1], "#") {
			t.Errorf("config.example.toml line %d (%s) has no comment above it", i+1, line)
		}
	}
}

// tomlDefault renders a setting's value as it is written in TOML (and in the docs).
func tomlDefault(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case Duration:
		return strconv.Quote(x.String())
	case OffDuration:
		b, _ := x.MarshalText()
		return strconv.Quote(string(b))
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	}
	panic(fmt.Sprintf("tomlDefault: unexpected type %T", v))
}

func TestDocsListEverySetting(t *testing.T) {
	f, err := os.Open(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]string{} // env var -> its table row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := regexp.MustCompile("^\\| `[a-z0-9_]+` \\| `(SIOBRIDGE_[A-Z0-9_]+)` \\|").FindStringSubmatch(line); m != nil {
			rows[m[1]] = line
		}
	}
	def := Default()
	for _, s := range settings {
		row, ok := rows[s.env]
		if !ok {
			t.Errorf("docs/configuration.md has no row for %s (%s)", s.key, s.env)
			continue
		}
		if !strings.HasPrefix(row, "| `"+s.name+"` |") {
			t.Errorf("docs row for %s does not start with its key %q: %s", s.env, s.name, row)
		}
		cols := strings.Split(row, " | ") // key, env var, type, default, meaning
		if len(cols) < 5 {
			t.Errorf("docs row for %s has %d columns, want 5: %s", s.key, len(cols), row)
			continue
		}
		if want := [...]string{kindString: "string", kindInt: "integer", kindBool: "boolean", kindStrings: "list", kindDuration: "duration", kindOffDuration: "duration"}[s.kind]; cols[2] != want {
			t.Errorf("docs row for %s gives the type %q, want %q", s.key, cols[2], want)
		}
		if d := "`" + tomlDefault(valueOf(&def, s.key)) + "`"; cols[3] != d {
			t.Errorf("docs row for %s gives the default %s, want %s", s.key, cols[3], d)
		}
		delete(rows, s.env)
	}
	for env := range rows {
		t.Errorf("docs/configuration.md documents %s, which is no setting", env)
	}
}

func TestSettingsTable(t *testing.T) {
	n := 0
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		n += ct.Field(i).Type.NumField()
	}
	if len(settings) != n {
		t.Errorf("%d settings for %d fields", len(settings), n)
	}
	seen := map[string]bool{}
	envRE := regexp.MustCompile(`^SIOBRIDGE_[A-Z]+_[A-Z0-9_]+$`)
	for _, s := range settings {
		if seen[s.env] {
			t.Errorf("environment variable %s used twice", s.env)
		}
		seen[s.env] = true
		if !envRE.MatchString(s.env) || s.env == EnvConfigPath {
			t.Errorf("bad environment variable name %q for %s", s.env, s.key)
		}
	}
	for key, env := range map[string]string{
		"webhook.url":            "SIOBRIDGE_WEBHOOK_URL",
		"socketio.ping_interval": "SIOBRIDGE_SOCKETIO_PING_INTERVAL",
		"api.max_body_bytes":     "SIOBRIDGE_API_MAX_BODY_BYTES",
	} {
		if got := settingEnv(key); got != env {
			t.Errorf("settingEnv(%q) = %q, want %q", key, got, env)
		}
	}
}

func TestLoadConfigFile(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want func(c *Config)
	}{
		{"empty file", "", func(c *Config) {}},
		{"comments only", "# nothing\n\n", func(c *Config) {}},
		{
			"every kind",
			`
[server]
listen = "0.0.0.0:8080"
upstream = "http://127.0.0.1:3000"

[api]
listen = "[::1]:9000"
max_body_bytes = 2048

[socketio]
path = "/rt/"
namespaces = ["/", "/chat"]
ping_interval = "1m30s"
transports = ["websocket"]
cors_origins = ["https://app.example.com", "http://localhost:5173"]
cors_credentials = true
max_queued_messages = 10
recovery = "2m"
recovery_max_packets = 50
recovery_max_bytes = 4096

[webhook]
url = "https://app.example.com/siobridge"
secret = "s3cret"
events = []
timeout = "300ms"
retries = 0
retry_wait_min = "1s"
retry_wait_max = "1s"
connect_on_error = "accept"

[log]
level = "debug"
format = "json"
`,
			func(c *Config) {
				c.Server.Listen = "0.0.0.0:8080"
				c.Server.Upstream = "http://127.0.0.1:3000"
				c.API.Listen = "[::1]:9000"
				c.API.MaxBodyBytes = 2048
				c.SocketIO.Path = "/rt/"
				c.SocketIO.Namespaces = []string{"/", "/chat"}
				c.SocketIO.PingInterval = dur("90s")
				c.SocketIO.Transports = []string{"websocket"}
				c.SocketIO.CORSOrigins = []string{"https://app.example.com", "http://localhost:5173"}
				c.SocketIO.CORSCredentials = true
				c.SocketIO.MaxQueuedMessages = 10
				c.SocketIO.Recovery = OffDuration{dur("2m")}
				c.SocketIO.RecoveryMaxPackets = 50
				c.SocketIO.RecoveryMaxBytes = 4096
				c.Webhook.URL = "https://app.example.com/siobridge"
				c.Webhook.Secret = "s3cret"
				c.Webhook.Events = []string{}
				c.Webhook.Timeout = dur("300ms")
				c.Webhook.Retries = 0
				c.Webhook.RetryWaitMin = dur("1s")
				c.Webhook.RetryWaitMax = dur("1s")
				c.Webhook.ConnectOnError = "accept"
				c.Log.Level = "debug"
				c.Log.Format = "json"
			},
		},
		{"dotted keys", `socketio.ping_timeout = "5s"` + "\n" + `log.level = "warn"`, func(c *Config) {
			c.SocketIO.PingTimeout = dur("5s")
			c.Log.Level = "warn"
		}},
		{"inline table", `api = { token = "` + testToken + `", listen = "10.0.0.1:7897" }`, func(c *Config) {
			c.API.Token = testToken
			c.API.Listen = "10.0.0.1:7897"
		}},
		{"path normalized", "[socketio]\npath = \"realtime\"", func(c *Config) { c.SocketIO.Path = "/realtime/" }},
		{"path gets trailing slash", "[socketio]\npath = \"/a/b\"", func(c *Config) { c.SocketIO.Path = "/a/b/" }},
		{"any namespace", "[socketio]\nnamespaces = [\"*\"]", func(c *Config) { c.SocketIO.Namespaces = []string{"*"} }},
		{"handshake headers", "[webhook]\nhandshake_headers = [\"User-Agent\", \"x-forwarded-for\", \"X_Weird~Name!\"]", func(c *Config) {
			c.Webhook.HandshakeHeaders = []string{"User-Agent", "x-forwarded-for", "X_Weird~Name!"}
		}},
		{"no handshake headers", "[webhook]\nhandshake_headers = []", func(c *Config) { c.Webhook.HandshakeHeaders = []string{} }},
		{"token on a public address", "[api]\nlisten = \":7897\"\ntoken = \"" + testToken + "\"", func(c *Config) {
			c.API.Listen = ":7897"
			c.API.Token = testToken
		}},
		{"localhost api", "[api]\nlisten = \"localhost:7897\"", func(c *Config) { c.API.Listen = "localhost:7897" }},
		{"ephemeral ports", "server.listen = \"127.0.0.1:0\"\napi.listen = \"127.0.0.1:0\"", func(c *Config) {
			c.Server.Listen = "127.0.0.1:0"
			c.API.Listen = "127.0.0.1:0"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(writeConfig(t, tt.toml), nil)
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	tests := []struct {
		name string
		file string // config file content; "" = no file
		env  []string
		want func(c *Config)
	}{
		{"nil env", "", nil, func(c *Config) {}},
		{"unrelated variables ignored", "", []string{"PATH=/bin", "HOME=/root", "siobridge_webhook_url=x", "SIOBRIDGE_CONFIG=/etc/siobridge.toml", "NOEQUALS"}, func(c *Config) {}},
		{"string", "", []string{"SIOBRIDGE_WEBHOOK_URL=http://127.0.0.1:3000/hook"}, func(c *Config) {
			c.Webhook.URL = "http://127.0.0.1:3000/hook"
		}},
		{"value with =", "", []string{"SIOBRIDGE_WEBHOOK_SECRET=a=b=c"}, func(c *Config) { c.Webhook.Secret = "a=b=c" }},
		{"int64", "", []string{"SIOBRIDGE_API_MAX_BODY_BYTES=4096"}, func(c *Config) { c.API.MaxBodyBytes = 4096 }},
		{"int", "", []string{"SIOBRIDGE_WEBHOOK_RETRIES= 7 "}, func(c *Config) { c.Webhook.Retries = 7 }},
		{"duration", "", []string{"SIOBRIDGE_SOCKETIO_PING_INTERVAL=300ms", "SIOBRIDGE_WEBHOOK_RETRY_WAIT_MAX=1m"}, func(c *Config) {
			c.SocketIO.PingInterval = dur("300ms")
			c.Webhook.RetryWaitMax = dur("1m")
		}},
		{"bool true", "", []string{"SIOBRIDGE_SOCKETIO_CORS_CREDENTIALS=true", "SIOBRIDGE_SOCKETIO_CORS_ORIGINS=https://a.example"}, func(c *Config) {
			c.SocketIO.CORSCredentials = true
			c.SocketIO.CORSOrigins = []string{"https://a.example"}
		}},
		{"bool 1", "", []string{"SIOBRIDGE_SOCKETIO_CORS_CREDENTIALS=1"}, func(c *Config) { c.SocketIO.CORSCredentials = true }},
		{"batches", "", []string{"SIOBRIDGE_WEBHOOK_BATCH_MAX=64", "SIOBRIDGE_WEBHOOK_BATCH_WAIT=5ms"}, func(c *Config) {
			c.Webhook.BatchMax = 64
			c.Webhook.BatchWait = dur("5ms")
		}},
		{"a name with a digit", "", []string{"SIOBRIDGE_SOCKETIO_ALLOW_EIO3=true"}, func(c *Config) { c.SocketIO.AllowEIO3 = true }},
		{"list trimmed", "", []string{"SIOBRIDGE_SOCKETIO_NAMESPACES= /, /chat ,/admin,"}, func(c *Config) {
			c.SocketIO.Namespaces = []string{"/", "/chat", "/admin"}
		}},
		{"empty list", "", []string{"SIOBRIDGE_WEBHOOK_EVENTS="}, func(c *Config) { c.Webhook.Events = []string{} }},
		{"redis cluster seeds", "", []string{"SIOBRIDGE_CLUSTER_ADAPTER=redis-sharded", "SIOBRIDGE_CLUSTER_REDIS_CLUSTER=10.0.0.5:6379, redis-2:7000"}, func(c *Config) {
			c.Cluster.Adapter = "redis-sharded"
			c.Cluster.RedisCluster = []string{"10.0.0.5:6379", "redis-2:7000"}
		}},
		{"handshake headers", "", []string{"SIOBRIDGE_WEBHOOK_HANDSHAKE_HEADERS=User-Agent, x-forwarded-for"}, func(c *Config) {
			c.Webhook.HandshakeHeaders = []string{"User-Agent", "x-forwarded-for"}
		}},
		{"no handshake headers", "", []string{"SIOBRIDGE_WEBHOOK_HANDSHAKE_HEADERS="}, func(c *Config) { c.Webhook.HandshakeHeaders = []string{} }},
		{"empty string", "[server]\nupstream = \"http://app:3000\"", []string{"SIOBRIDGE_SERVER_UPSTREAM="}, func(c *Config) {}},
		{"env beats file", "[log]\nlevel = \"debug\"\nformat = \"json\"", []string{"SIOBRIDGE_LOG_LEVEL=error"}, func(c *Config) {
			c.Log.Level = "error"
			c.Log.Format = "json"
		}},
		{"last one wins", "", []string{"SIOBRIDGE_LOG_LEVEL=warn", "SIOBRIDGE_LOG_LEVEL=debug"}, func(c *Config) { c.Log.Level = "debug" }},
		{"token makes a public API valid", "", []string{"SIOBRIDGE_API_LISTEN=0.0.0.0:7897", "SIOBRIDGE_API_TOKEN=" + testToken}, func(c *Config) {
			c.API.Listen = "0.0.0.0:7897"
			c.API.Token = testToken
		}},
		{"path normalized", "", []string{"SIOBRIDGE_SOCKETIO_PATH=/io"}, func(c *Config) { c.SocketIO.Path = "/io/" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeConfig(t, tt.file)
			}
			got, err := Load(path, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// checkErr checks that err's every line is in the "config: " style, and that err mentions
// every one of wants.
func checkErr(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", wants)
	}
	msg := err.Error()
	for _, line := range strings.Split(msg, "\n") {
		if !strings.HasPrefix(line, "config: ") {
			t.Errorf("error line %q does not start with \"config: \"", line)
		}
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   []string
	}{
		{"server listen no port", func(c *Config) { c.Server.Listen = "7896" }, []string{`config: server.listen: must be host:port`, `"7896"`}},
		{"server listen empty", func(c *Config) { c.Server.Listen = "" }, []string{"config: server.listen: "}},
		{"server listen named port", func(c *Config) { c.Server.Listen = ":http" }, []string{"config: server.listen: port must be a number"}},
		{"server listen port too big", func(c *Config) { c.Server.Listen = ":70000" }, []string{"config: server.listen: port must be a number"}},
		{"server listen url", func(c *Config) { c.Server.Listen = "http://0.0.0.0:7896" }, []string{"config: server.listen: "}},
		{"upstream not absolute", func(c *Config) { c.Server.Upstream = "127.0.0.1:3000" }, []string{`config: server.upstream: must be an absolute http(s) URL, got "127.0.0.1:3000"`}},
		{"upstream wrong scheme", func(c *Config) { c.Server.Upstream = "ftp://app" }, []string{"config: server.upstream: must be an absolute http(s) URL"}},
		{"upstream query", func(c *Config) { c.Server.Upstream = "http://app:3000/?x=1" }, []string{"config: server.upstream: must not have a query"}},
		{"upstream fragment", func(c *Config) { c.Server.Upstream = "http://app:3000/#x" }, []string{"config: server.upstream: must not have a #fragment"}},
		{"api listen bad", func(c *Config) { c.API.Listen = "localhost" }, []string{"config: api.listen: must be host:port"}},
		{"api listen same as server", func(c *Config) { c.API.Listen = "0.0.0.0:7896"; c.API.Token = testToken }, []string{"config: api.listen: ", "overlaps server.listen"}},
		{"api public without token", func(c *Config) { c.API.Listen = "0.0.0.0:7897" }, []string{"config: api.token: required when api.listen (0.0.0.0:7897) is not a loopback address", "SIOBRIDGE_API_TOKEN"}},
		{"api all interfaces without token", func(c *Config) { c.API.Listen = ":7897" }, []string{"config: api.token: required when api.listen (:7897)"}},
		{"api ipv6 any without token", func(c *Config) { c.API.Listen = "[::]:7897" }, []string{"config: api.token: required"}},
		{"api LAN address without token", func(c *Config) { c.API.Listen = "192.168.1.10:7897" }, []string{"config: api.token: required"}},
		{"api hostname without token", func(c *Config) { c.API.Listen = "myhost:7897" }, []string{"config: api.token: required"}},
		{"handshake header with a space", func(c *Config) { c.Webhook.HandshakeHeaders = []string{"user-agent", "x forwarded"} }, []string{`config: webhook.handshake_headers: "x forwarded" is not a header name`, `["*"]`}},
		{"handshake header empty", func(c *Config) { c.Webhook.HandshakeHeaders = []string{""} }, []string{`config: webhook.handshake_headers: "" is not a header name`}},
		{"handshake header with a colon", func(c *Config) { c.Webhook.HandshakeHeaders = []string{"cookie:"} }, []string{`config: webhook.handshake_headers: "cookie:" is not a header name`}},
		{"handshake header not ASCII", func(c *Config) { c.Webhook.HandshakeHeaders = []string{"x-café"} }, []string{`config: webhook.handshake_headers: "x-café" is not a header name`}},
		{"handshake headers star and names", func(c *Config) { c.Webhook.HandshakeHeaders = []string{"*", "cookie"} }, []string{`config: webhook.handshake_headers: "*" stands for every header: use ["*"] alone, or list names without it`}},
		{"api token whitespace", func(c *Config) { c.API.Token = "abc\n" }, []string{"config: api.token: must not start or end with whitespace"}},
		{"max body zero", func(c *Config) { c.API.MaxBodyBytes = 0 }, []string{"config: api.max_body_bytes: must be at least 1"}},
		{"path empty", func(c *Config) { c.SocketIO.Path = "" }, []string{"config: socketio.path: must not be empty"}},
		{"path query", func(c *Config) { c.SocketIO.Path = "/socket.io/?x" }, []string{"config: socketio.path: must be a plain URL path"}},
		{"path dot dot", func(c *Config) { c.SocketIO.Path = "/a/../b/" }, []string{"config: socketio.path: "}},
		{"path double slash", func(c *Config) { c.SocketIO.Path = "//x/" }, []string{"config: socketio.path: "}},
		{"path space", func(c *Config) { c.SocketIO.Path = "/a b/" }, []string{"config: socketio.path: "}},
		{"root path with upstream", func(c *Config) { c.SocketIO.Path = "/"; c.Server.Upstream = "http://app" }, []string{`config: socketio.path: must not be "/" when server.upstream is set`}},
		{"namespaces empty", func(c *Config) { c.SocketIO.Namespaces = nil }, []string{"config: socketio.namespaces: must not be empty"}},
		{"namespace without slash", func(c *Config) { c.SocketIO.Namespaces = []string{"/", "chat"} }, []string{`config: socketio.namespaces: "chat" must start with "/"`}},
		{"ping interval zero", func(c *Config) { c.SocketIO.PingInterval = Duration{} }, []string{`config: socketio.ping_interval: must be a positive duration like "25s", got "0s"`}},
		{"ping timeout negative", func(c *Config) { c.SocketIO.PingTimeout = dur("-1s") }, []string{"config: socketio.ping_timeout: must be a positive duration"}},
		{"connect timeout zero", func(c *Config) { c.SocketIO.ConnectTimeout = Duration{} }, []string{"config: socketio.connect_timeout: "}},
		{"upgrade timeout zero", func(c *Config) { c.SocketIO.UpgradeTimeout = Duration{} }, []string{"config: socketio.upgrade_timeout: "}},
		{"max payload zero", func(c *Config) { c.SocketIO.MaxPayload = 0 }, []string{"config: socketio.max_payload: must be from 1 to 100000000"}},
		{"max payload too big", func(c *Config) { c.SocketIO.MaxPayload = 100_000_001 }, []string{"config: socketio.max_payload: "}},
		{"transports empty", func(c *Config) { c.SocketIO.Transports = []string{} }, []string{"config: socketio.transports: must not be empty"}},
		{"transport unknown", func(c *Config) { c.SocketIO.Transports = []string{"polling", "ws"} }, []string{`config: socketio.transports: unknown transport "ws"`}},
		{"cors origin with path", func(c *Config) { c.SocketIO.CORSOrigins = []string{"https://app.example.com/"} }, []string{`config: socketio.cors_origins: "https://app.example.com/" is not an origin`}},
		{"cors origin without scheme", func(c *Config) { c.SocketIO.CORSOrigins = []string{"app.example.com"} }, []string{"config: socketio.cors_origins: "}},
		{"cors origin with query", func(c *Config) { c.SocketIO.CORSOrigins = []string{"https://a.example?x"} }, []string{"config: socketio.cors_origins: "}},
		{"cors origin bad port", func(c *Config) { c.SocketIO.CORSOrigins = []string{"https://a.example:x"} }, []string{"config: socketio.cors_origins: "}},
		{"cors wildcard with credentials", func(c *Config) { c.SocketIO.CORSOrigins = []string{"*"}; c.SocketIO.CORSCredentials = true }, []string{"config: socketio.cors_credentials: must be false"}},
		{"max queued zero", func(c *Config) { c.SocketIO.MaxQueuedMessages = 0 }, []string{"config: socketio.max_queued_messages: must be at least 1"}},
		{"recovery negative", func(c *Config) { c.SocketIO.Recovery = OffDuration{dur("-1m")} }, []string{`config: socketio.recovery: must be a positive duration like "2m", or "" or "0" for off, got "-1m"`}},
		{"recovery with redis", func(c *Config) { c.SocketIO.Recovery = OffDuration{dur("2m")}; c.Cluster.Adapter = "redis" }, []string{`config: socketio.recovery: connection state recovery works on a single node (cluster.adapter = "memory") or across nodes with cluster.adapter = "redis-streams", not with "redis"`}},
		{"recovery packets zero", func(c *Config) { c.SocketIO.RecoveryMaxPackets = 0 }, []string{"config: socketio.recovery_max_packets: must be at least 1 (packets), got 0"}},
		{"recovery bytes zero", func(c *Config) { c.SocketIO.RecoveryMaxBytes = 0 }, []string{"config: socketio.recovery_max_bytes: must be at least 1 (bytes), got 0"}},
		{"webhook url host:port", func(c *Config) { c.Webhook.URL = "localhost:3000" }, []string{`config: webhook.url: must be an absolute http(s) URL, got "localhost:3000"`, `did you mean "http://localhost:3000"?`}},
		{"webhook url relative", func(c *Config) { c.Webhook.URL = "/webhook" }, []string{"config: webhook.url: must be an absolute http(s) URL"}},
		{"webhook url no host", func(c *Config) { c.Webhook.URL = "http:///webhook" }, []string{"config: webhook.url: "}},
		{"webhook event unknown", func(c *Config) { c.Webhook.Events = []string{"connect", "message"} }, []string{`config: webhook.events: unknown kind "message"`}},
		{"webhook timeout zero", func(c *Config) { c.Webhook.Timeout = Duration{} }, []string{"config: webhook.timeout: "}},
		{"retries negative", func(c *Config) { c.Webhook.Retries = -1 }, []string{"config: webhook.retries: must be from 0 to 100, got -1"}},
		{"retries too many", func(c *Config) { c.Webhook.Retries = 101 }, []string{"config: webhook.retries: "}},
		{"retry wait min zero", func(c *Config) { c.Webhook.RetryWaitMin = Duration{} }, []string{"config: webhook.retry_wait_min: "}},
		{"retry wait max below min", func(c *Config) { c.Webhook.RetryWaitMax = dur("50ms") }, []string{`config: webhook.retry_wait_max: must be at least webhook.retry_wait_min ("100ms"), got "50ms"`}},
		{"concurrency zero", func(c *Config) { c.Webhook.Concurrency = 0 }, []string{"config: webhook.concurrency: must be from 1 to 10000"}},
		{"concurrency too big", func(c *Config) { c.Webhook.Concurrency = 10001 }, []string{"config: webhook.concurrency: "}},
		{"queue size zero", func(c *Config) { c.Webhook.QueueSize = 0 }, []string{"config: webhook.queue_size: "}},
		{"queue bytes zero", func(c *Config) { c.Webhook.QueueMaxBytes = 0 }, []string{"config: webhook.queue_max_bytes: "}},
		{"batch max zero", func(c *Config) { c.Webhook.BatchMax = 0 }, []string{"config: webhook.batch_max: must be from 1 (no batches: each event webhook is a POST of its own) to 1000, got 0"}},
		{"batch max too large", func(c *Config) { c.Webhook.BatchMax = 1001 }, []string{"config: webhook.batch_max: must be from 1 (no batches: each event webhook is a POST of its own) to 1000, got 1001"}},
		{"batch wait negative", func(c *Config) { c.Webhook.BatchWait = dur("-1ms") }, []string{`config: webhook.batch_wait: must be from "0s" (send what is ready at once) to "1s", got "-1ms"`}},
		{"batch wait too long", func(c *Config) { c.Webhook.BatchWait = dur("2s") }, []string{`config: webhook.batch_wait: must be from "0s" (send what is ready at once) to "1s", got "2s"`}},
		{"connect on error", func(c *Config) { c.Webhook.ConnectOnError = "allow" }, []string{`config: webhook.connect_on_error: must be "refuse" or "accept", got "allow"`}},
		{"shutdown timeout zero", func(c *Config) { c.Server.ShutdownTimeout = Duration{} }, []string{`config: server.shutdown_timeout: must be a positive duration like "25s", got "0s"`}},
		{"spool max bytes small", func(c *Config) { c.Webhook.SpoolMaxBytes = 4096 }, []string{"config: webhook.spool_max_bytes: must be at least 1048576 (1 MiB), got 4096"}},
		{"spool fsync unknown", func(c *Config) { c.Webhook.SpoolFsync = "sometimes" }, []string{`config: webhook.spool_fsync: must be "always", "interval" or "never", got "sometimes"`}},
		{"spool without url", func(c *Config) { c.Webhook.SpoolDir = "/var/lib/siobridge" }, []string{"config: webhook.spool_dir: is set but webhook.url is not"}},
		{"cluster adapter", func(c *Config) { c.Cluster.Adapter = "etcd" }, []string{`config: cluster.adapter: must be "memory", "redis", "redis-sharded" or "redis-streams", got "etcd"`}},
		{"redis url, sharded", func(c *Config) { c.Cluster.Adapter, c.Cluster.RedisURL = "redis-sharded", "localhost:6379" }, []string{`config: cluster.redis_url: must be a redis://, rediss:// or unix:// URL, got "localhost:6379"`}},
		{"recovery with redis-sharded", func(c *Config) { c.SocketIO.Recovery = OffDuration{dur("2m")}; c.Cluster.Adapter = "redis-sharded" }, []string{`config: socketio.recovery: connection state recovery works on a single node (cluster.adapter = "memory") or across nodes with cluster.adapter = "redis-streams", not with "redis-sharded"`}},
		{"redis url, streams", func(c *Config) { c.Cluster.Adapter, c.Cluster.RedisURL = "redis-streams", "localhost:6379" }, []string{`config: cluster.redis_url: must be a redis://, rediss:// or unix:// URL, got "localhost:6379"`}},
		{"redis url", func(c *Config) { c.Cluster.Adapter, c.Cluster.RedisURL = "redis", "localhost:6379" }, []string{`config: cluster.redis_url: must be a redis://, rediss:// or unix:// URL, got "localhost:6379"`}},
		{"redis cluster and redis url", func(c *Config) {
			c.Cluster.Adapter, c.Cluster.RedisURL, c.Cluster.RedisCluster = "redis", "redis://redis:6379/0", []string{"127.0.0.1:7000"}
		}, []string{`config: cluster.redis_cluster: and cluster.redis_url are both set (to "redis://redis:6379/0"): name either one Redis server (redis_url) or the seed nodes of a Redis Cluster (redis_cluster), not both`}},
		{"redis cluster seed without port", func(c *Config) {
			c.Cluster.Adapter, c.Cluster.RedisCluster = "redis-sharded", []string{"127.0.0.1:7000", "redis-1"}
		}, []string{`config: cluster.redis_cluster: entries must be "host:port" seed nodes of a Redis Cluster (like "10.0.0.5:6379"), got "redis-1"`}},
		{"redis cluster seed URL", func(c *Config) { c.Cluster.RedisCluster = []string{"redis://127.0.0.1:7000"} }, []string{`config: cluster.redis_cluster: entries must be "host:port"`}},
		{"key prefix", func(c *Config) { c.Cluster.KeyPrefix = "a#b" }, []string{`config: cluster.key_prefix: must be a non-empty prefix`}},
		{"request timeout", func(c *Config) { c.Cluster.RequestTimeout = dur("0s") }, []string{`config: cluster.request_timeout: must be a positive duration`}},
		{"trusted proxy not a cidr", func(c *Config) { c.Server.TrustedProxies = []string{"10.0.0.0/8", "proxy.local"} }, []string{`config: server.trusted_proxies: "proxy.local" is not an IP address or CIDR`}},
		{"trusted proxy bad mask", func(c *Config) { c.Server.TrustedProxies = []string{"10.0.0.0/33"} }, []string{`config: server.trusted_proxies: "10.0.0.0/33"`}},
		{"queue full", func(c *Config) { c.Webhook.QueueFull = "drop" }, []string{`config: webhook.queue_full: must be "disconnect" or "reject", got "drop"`}},
		{"max connections negative", func(c *Config) { c.Limits.MaxConnections = -1 }, []string{"config: limits.max_connections: must be 0 (unlimited) or more, got -1"}},
		{"per ip negative", func(c *Config) { c.Limits.MaxConnectionsPerIP = -5 }, []string{"config: limits.max_connections_per_ip: "}},
		{"handshake rate negative", func(c *Config) { c.Limits.HandshakesPerSecondPerIP = -1 }, []string{"config: limits.handshakes_per_second_per_ip: "}},
		{"event rate negative", func(c *Config) { c.Limits.EventsPerSecondPerSocket = -1 }, []string{"config: limits.events_per_second_per_socket: "}},
		{"rooms negative", func(c *Config) { c.Limits.MaxRoomsPerSocket = -1 }, []string{"config: limits.max_rooms_per_socket: "}},
		{"namespaces negative", func(c *Config) { c.Limits.MaxNamespacesPerConnection = -1 }, []string{"config: limits.max_namespaces_per_connection: "}},
		{"dynamic namespaces negative", func(c *Config) { c.SocketIO.MaxDynamicNamespaces = -1 }, []string{"config: socketio.max_dynamic_namespaces: must be 0 (unlimited) or more (namespaces), got -1"}},
		{"attachments zero", func(c *Config) { c.Limits.MaxAttachments = 0 }, []string{"config: limits.max_attachments: must be from 1 to 1000, got 0"}},
		{"attachments too many", func(c *Config) { c.Limits.MaxAttachments = 1001 }, []string{"config: limits.max_attachments: "}},
		{"log level", func(c *Config) { c.Log.Level = "INFO" }, []string{`config: log.level: must be "debug", "info", "warn" or "error", got "INFO"`}},
		{"log format", func(c *Config) { c.Log.Format = "logfmt" }, []string{`config: log.format: must be "text" or "json", got "logfmt"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c)
			err := c.Validate()
			checkErr(t, err, tt.want...)
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("%d errors, want 1: %v", n, err)
			}
		})
	}
}

func TestValidateCollectsEveryError(t *testing.T) {
	c := Default()
	c.Server.Listen = "nope"
	c.API.Listen = "0.0.0.0:1"
	c.SocketIO.PingInterval = Duration{}
	c.SocketIO.Transports = []string{"x", "y"}
	c.Webhook.URL = "nope"
	c.Log.Format = "xml"
	err := c.Validate()
	checkErr(t, err, "server.listen", "api.token", "socketio.ping_interval", `"x"`, `"y"`, "webhook.url", "log.format")
	if n := len(strings.Split(err.Error(), "\n")); n != 7 {
		t.Errorf("%d error lines, want 7:\n%v", n, err)
	}
}

func TestAPILoopback(t *testing.T) {
	for listen, loopback := range map[string]bool{
		"127.0.0.1:7897":    true,
		"127.1.2.3:7897":    true,
		"localhost:7897":    true,
		"LOCALHOST:7897":    true,
		"[::1]:7897":        true,
		":7897":             false,
		"0.0.0.0:7897":      false,
		"[::]:7897":         false,
		"10.0.0.5:7897":     false,
		"example.com:7897":  false,
		"[fe80::1%lo]:7897": false,
	} {
		c := Default()
		c.API.Listen = listen
		err := c.Validate()
		if loopback && err != nil {
			t.Errorf("api.listen %q: %v", listen, err)
		}
		if !loopback {
			checkErr(t, err, "api.token: required when api.listen ("+listen+")")
			c.API.Token = testToken
			if err := c.Validate(); err != nil {
				t.Errorf("api.listen %q with a token: %v", listen, err)
			}
		}
	}
}

// A token that guards an API the network reaches must be too long to guess; on loopback,
// where only this machine's users reach it, any token will do.
func TestAPITokenLength(t *testing.T) {
	long := strings.Repeat("a1", 16) // 32 characters
	short := long[:31]
	for _, tc := range []struct {
		listen, token string
		ok            bool
	}{
		{"0.0.0.0:7897", short, false},
		{":7897", short, false},
		{"10.0.0.5:7897", "change-me", false},
		{"[::]:7897", strings.Repeat("é", 31), false},
		{"0.0.0.0:7897", long, true},
		{"10.0.0.5:7897", long + "more", true},
		{"127.0.0.1:7897", "abc", true},
		{"localhost:7897", short, true},
		{"[::1]:7897", "t", true},
	} {
		t.Run(tc.listen+" "+tc.token, func(t *testing.T) {
			for _, load := range []struct {
				name string
				load func() error
			}{
				{"file", func() error {
					_, err := Load(writeConfig(t, fmt.Sprintf("[api]\nlisten = %q\ntoken = %q\n", tc.listen, tc.token)), nil)
					return err
				}},
				{"env", func() error {
					_, err := Load("", []string{"SIOBRIDGE_API_LISTEN=" + tc.listen, "SIOBRIDGE_API_TOKEN=" + tc.token})
					return err
				}},
			} {
				err := load.load()
				if tc.ok {
					if err != nil {
						t.Errorf("%s: %v", load.name, err)
					}
					continue
				}
				checkErr(t, err, fmt.Sprintf("config: api.token: must be at least 32 characters when api.listen (%s) is not a loopback address, got %d: ",
					tc.listen, utf8.RuneCountInString(tc.token)), "openssl rand -hex 32")
				if strings.Contains(err.Error(), tc.token) {
					t.Errorf("%s: the error shows the token: %v", load.name, err)
				}
			}
		})
	}
}

func TestLoadConfigFileErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string
	}{
		{"unknown key", "[webhook]\nurl = \"http://a\"\nretrys = 3\n", []string{`config: unknown key "webhook.retrys" in `, "at line 3", `did you mean "webhook.retries"?`}},
		{"every unknown key", "[server]\nlisten = \":1\"\nlisen = \":2\"\n[api]\ntoken = \"x\"\nfoo = 1\n[metrics]\nenabled = true\n", []string{
			`unknown key "server.lisen"`, `did you mean "server.listen"?`, "line 3", `unknown key "api.foo"`, `unknown key "metrics"`, "remove it",
		}},
		{"key in the wrong section", "[server]\ntoken = \"x\"\n", []string{`unknown key "server.token"`, `did you mean "api.token"?`}},
		{"key outside its section", "listen = \":1\"\n", []string{`unknown key "listen"`, `did you mean "server.listen" or "api.listen"?`}},
		{"section misspelled", "[webhok]\nurl = \"http://a\"\n", []string{`unknown key "webhok"`, `did you mean "webhook"?`}},
		{"integer duration", "[socketio]\nping_interval = 25\n", []string{`config: socketio.ping_interval: invalid duration "25": use a string like "25s"`}},
		{"integer zero duration", "[webhook]\ntimeout = 0\n", []string{`config: webhook.timeout: invalid duration "0": use a string like "25s"`}},
		{"string number duration", "[socketio]\nping_timeout = \"20\"\n", []string{`config: socketio.ping_timeout: invalid duration "20": use a string like "25s"`}},
		{"float duration", "[webhook]\nretry_wait_min = 0.5\n", []string{`config: webhook.retry_wait_min: invalid duration "0.5": use a string like "25s"`}},
		{"bad duration string", "[webhook]\ntimeout = \"5 seconds\"\n", []string{`config: webhook.timeout: invalid duration "5 seconds"`}},
		{"array duration", "[webhook]\ntimeout = [\"5s\"]\n", []string{`config: webhook.timeout: must be a duration string like "25s", got an array`}},
		{"integer recovery", "[socketio]\nrecovery = 120\n", []string{`config: socketio.recovery: must be a duration string like "2m", or "" or "0" for off, got integer 120`}},
		{"number string recovery", "[socketio]\nrecovery = \"120\"\n", []string{`config: socketio.recovery: invalid duration "120": use a string like "25s", or "" or "0" for off`}},
		{"every type error", "[server]\nlisten = 7896\n[api]\nmax_body_bytes = \"1MB\"\n[socketio]\ncors_credentials = \"yes\"\ntransports = \"websocket\"\nnamespaces = [\"/\", 2]\nmax_payload = 1.5\n", []string{
			"config: server.listen: must be a string (in quotes), got integer 7896",
			`config: api.max_body_bytes: must be an integer, got string "1MB"`,
			`config: socketio.cors_credentials: must be true or false, got string "yes"`,
			`config: socketio.transports: must be a list of strings like ["a", "b"], got string "websocket"`,
			"config: socketio.namespaces: must be a list of strings like [\"a\", \"b\"], but item 2 is integer 2",
			"config: socketio.max_payload: must be an integer, got float 1.5",
		}},
		{"secret not echoed", "[api]\ntoken = 12345678\n", []string{"config: api.token: must be a string (in quotes), got integer"}},
		{"section not a table", "server = \":7896\"\n", []string{`config: server: must be a table (a [server] section), got string ":7896"`}},
		{"syntax error", "[server]\nlisten = \":7896\"\nupstream = \n", []string{"config: invalid TOML in ", "at line 3, column"}},
		{"unclosed string", "[log]\n\nlevel = \"info\n", []string{"config: invalid TOML in ", "line 3"}},
		{"duplicate key", "[log]\nlevel = \"info\"\nlevel = \"debug\"\n", []string{"config: invalid TOML in ", "line 3", "already defined"}},
		{"valid TOML, invalid value", "[webhook]\nurl = \"localhost:3000\"\n", []string{`config: webhook.url: must be an absolute http(s) URL, got "localhost:3000"`}},
		{"valid TOML, public API", "[api]\nlisten = \"0.0.0.0:7897\"\n", []string{"config: api.token: required when api.listen (0.0.0.0:7897) is not a loopback address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.toml)
			cfg, err := Load(path, nil)
			checkErr(t, err, tt.want...)
			if strings.Contains(err.Error(), "12345678") {
				t.Errorf("error shows the secret: %v", err)
			}
			if !reflect.DeepEqual(cfg, Config{}) {
				t.Errorf("Load returned %+v with its error, want the zero Config", cfg)
			}
		})
	}
}

func TestUnknownKeyNamesTheFile(t *testing.T) {
	path := writeConfig(t, "[webhook]\nretrys = 3\n")
	_, err := Load(path, nil)
	checkErr(t, err, `config: unknown key "webhook.retrys" in `+path+" at line 2")
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"), nil)
	checkErr(t, err, "nope.toml", "no such file")
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"integer duration", []string{"SIOBRIDGE_SOCKETIO_PING_INTERVAL=25"}, []string{`config: SIOBRIDGE_SOCKETIO_PING_INTERVAL: invalid duration "25": use a string like "25s"`}},
		{"bad recovery", []string{"SIOBRIDGE_SOCKETIO_RECOVERY=2"}, []string{`config: SIOBRIDGE_SOCKETIO_RECOVERY: invalid duration "2": use a string like "25s", or "" or "0" for off`}},
		{"bad duration", []string{"SIOBRIDGE_WEBHOOK_TIMEOUT=soon"}, []string{`config: SIOBRIDGE_WEBHOOK_TIMEOUT: invalid duration "soon"`}},
		{"bad int", []string{"SIOBRIDGE_API_MAX_BODY_BYTES=1MB"}, []string{`config: SIOBRIDGE_API_MAX_BODY_BYTES: must be an integer, got "1MB"`}},
		{"empty int", []string{"SIOBRIDGE_WEBHOOK_RETRIES="}, []string{`config: SIOBRIDGE_WEBHOOK_RETRIES: must be an integer, got ""`}},
		{"bad bool", []string{"SIOBRIDGE_SOCKETIO_CORS_CREDENTIALS=yes"}, []string{`config: SIOBRIDGE_SOCKETIO_CORS_CREDENTIALS: must be true or false, got "yes"`}},
		{"all of them", []string{"SIOBRIDGE_API_MAX_BODY_BYTES=1MB", "SIOBRIDGE_LOG_LEVEL=info", "SIOBRIDGE_WEBHOOK_RETRIES=x"}, []string{"SIOBRIDGE_API_MAX_BODY_BYTES:", "SIOBRIDGE_WEBHOOK_RETRIES:"}},
		{"unknown ones are no error", []string{"SIOBRIDGE_BIN=/usr/local/bin/siobridge", "SIOBRIDGE_LOG_FORMAT=xml"}, []string{`config: log.format: must be "text" or "json", got "xml"`}},
		{"valid syntax, invalid value", []string{"SIOBRIDGE_LOG_FORMAT=xml"}, []string{`config: log.format: must be "text" or "json", got "xml"`}},
		{"list validated", []string{"SIOBRIDGE_SOCKETIO_TRANSPORTS=polling, websockets"}, []string{`config: socketio.transports: unknown transport "websockets"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load("", tt.env)
			checkErr(t, err, tt.want...)
			if !reflect.DeepEqual(cfg, Config{}) {
				t.Errorf("Load returned %+v with its error, want the zero Config", cfg)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string // the warnings, in order
	}{
		{"none", []string{"PATH=/bin", "SIOBRIDGE_CONFIG=/etc/siobridge.toml", "SIOBRIDGE_LOG_LEVEL=warn", "siobridge_bin=x"}, nil},
		{"another tool's variable", []string{"SIOBRIDGE_BIN=/usr/local/bin/siobridge"},
			[]string{"config: SIOBRIDGE_BIN: unknown setting, ignored (docs/configuration.md lists the settings' variables)"}},
		{"misspelled", []string{"SIOBRIDGE_WEBHOOK_TIMOUT=5s"},
			[]string{`config: SIOBRIDGE_WEBHOOK_TIMOUT: unknown setting, ignored: did you mean "SIOBRIDGE_WEBHOOK_TIMEOUT"?`}},
		{"without its section", []string{"SIOBRIDGE_TOKEN=x"},
			[]string{`config: SIOBRIDGE_TOKEN: unknown setting, ignored: did you mean "SIOBRIDGE_API_TOKEN"?`}},
		{"secret without url", []string{"SIOBRIDGE_WEBHOOK_SECRET=s3cret"},
			[]string{"config: webhook.secret: is set but webhook.url is not: no webhook is sent, so nothing is signed; set webhook.url"}},
		{"secret with url", []string{"SIOBRIDGE_WEBHOOK_SECRET=s3cret", "SIOBRIDGE_WEBHOOK_URL=http://127.0.0.1:3000/hook"}, nil},
		{"every one", []string{"SIOBRIDGE_A=1", "SIOBRIDGE_WEBHOOK_SECRET=s3cret", "SIOBRIDGE_B=2"}, []string{
			"config: SIOBRIDGE_A: unknown setting, ignored (docs/configuration.md lists the settings' variables)",
			"config: SIOBRIDGE_B: unknown setting, ignored (docs/configuration.md lists the settings' variables)",
			"config: webhook.secret: is set but webhook.url is not: no webhook is sent, so nothing is signed; set webhook.url",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load("", tt.env)
			if err != nil {
				t.Fatalf("Load: %v; warnings are no errors", err)
			}
			if got := cfg.Warnings(tt.env); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Warnings:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	for _, tt := range []struct {
		in, err string
		want    time.Duration
	}{
		{in: "25s", want: 25 * time.Second},
		{in: "300ms", want: 300 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "-2s", want: -2 * time.Second},
		{in: "25", err: `invalid duration "25": use a string like "25s"`},
		{in: "0", err: `invalid duration "0": use a string like "25s"`},
		{in: "", err: `invalid duration ""`},
		{in: "5 s", err: `invalid duration "5 s": use a string like "25s" or "300ms" (units ns, us, ms, s, m, h)`},
		{in: "40ns", want: 40 * time.Nanosecond},
		{in: "250us", want: 250 * time.Microsecond},
		{in: "250µs", want: 250 * time.Microsecond},
	} {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("UnmarshalText(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || d.Duration != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", tt.in, d.Duration, err, tt.want)
		}
		text, err := d.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := back.UnmarshalText(text); err != nil || back != d {
			t.Errorf("MarshalText round trip of %v: %q -> %v, %v", d.Duration, text, back.Duration, err)
		}
	}
}

// TestDurationUnitsDocumented checks that the units an invalid duration's error lists, and
// those docs/configuration.md lists, are the units the parser takes.
func TestDurationUnitsDocumented(t *testing.T) {
	_, err := parseDuration("soon")
	m := regexp.MustCompile(`\(units ([a-z, ]+)\)`).FindStringSubmatch(fmt.Sprint(err))
	if m == nil {
		t.Fatalf("the error %q lists no units", err)
	}
	units := strings.Split(m[1], ", ")
	for _, u := range units {
		if _, err := parseDuration("2" + u); err != nil {
			t.Errorf("the error lists the unit %q, which the parser refuses: %v", u, err)
		}
	}
	docs, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(units))
	for i, u := range units {
		quoted[i] = "`" + u + "`"
	}
	if line := "Durations take the units " + strings.Join(quoted, ", "); !strings.Contains(strings.ReplaceAll(string(docs), " (or `µs`)", ""), line) {
		t.Errorf("docs/configuration.md does not say %q", line)
	}
}

func TestConfigMarshalsToLoadableTOML(t *testing.T) {
	// A Config written with go-toml (Duration as text) reads back the same: what a "print the
	// effective config" feature would rely on.
	c := Default()
	c.Webhook.URL = "http://127.0.0.1:3000/hook"
	c.SocketIO.CORSOrigins = []string{"https://a.example"}
	data, err := toml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(writeConfig(t, string(data)), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, c)
	}
}

func TestTrustedProxyPrefixes(t *testing.T) {
	c := Default()
	c.Server.TrustedProxies = []string{"10.1.2.3/8", "192.0.2.7", "2001:db8::/32", "::1"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.Server.TrustedProxyPrefixes() {
		got = append(got, p.String())
	}
	if want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::1/128"}; !reflect.DeepEqual(got, want) {
		t.Errorf("prefixes %v, want %v", got, want)
	}
}

func TestSuggest(t *testing.T) {
	for _, tt := range []struct {
		got  string
		want string
	}{
		{"webhook.retrys", `did you mean "webhook.retries"?`},
		{"socketio.pinginterval", `did you mean "socketio.ping_interval"?`},
		{"zzz.qqq", "remove it"},
	} {
		if h := unknownKeyHint(tt.got); !strings.Contains(h, tt.want) {
			t.Errorf("unknownKeyHint(%q) = %q, want %q", tt.got, h, tt.want)
		}
	}
}

// TestRecoverySetting: the recovery window reads as a duration, with "" and "0" for off, from
// the file and from the environment.
func TestRecoverySetting(t *testing.T) {
	for _, tc := range []struct {
		toml, env string
		want      time.Duration
	}{
		{`recovery = "2m"`, "", 2 * time.Minute},
		{`recovery = ""`, "", 0},
		{`recovery = "0"`, "", 0},
		{`recovery = "2m"`, "0", 0},
		{`recovery = ""`, "90s", 90 * time.Second},
	} {
		path := filepath.Join(t.TempDir(), "c.toml")
		if err := os.WriteFile(path, []byte("[socketio]\n"+tc.toml+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var env []string
		if tc.env != "" {
			env = []string{"SIOBRIDGE_SOCKETIO_RECOVERY=" + tc.env}
		}
		c, err := Load(path, env)
		if err != nil {
			t.Fatalf("%s env %q: %v", tc.toml, tc.env, err)
		}
		if got := c.SocketIO.Recovery.Duration.Duration; got != tc.want {
			t.Errorf("%s env %q: recovery %v, want %v", tc.toml, tc.env, got, tc.want)
		}
	}
}

// TestDurationString: durations are written as they would be typed, without zero tails.
func TestDurationString(t *testing.T) {
	for in, want := range map[string]string{"2m": "2m", "1h": "1h", "1h30m": "1h30m", "90s": "1m30s", "500ms": "500ms", "1h0m5s": "1h0m5s", "0s": "0s"} {
		d, err := time.ParseDuration(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := (Duration{d}).String(); got != want {
			t.Errorf("Duration(%s).String() = %q, want %q", in, got, want)
		}
	}
}

// TestValidateRecoveryWithStreams: connection state recovery is allowed across nodes with the
// streams adapter, whose sessions live in Redis.
func TestValidateRecoveryWithStreams(t *testing.T) {
	c := Default()
	c.SocketIO.Recovery = OffDuration{dur("2m")}
	c.Cluster.Adapter = "redis-streams"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
