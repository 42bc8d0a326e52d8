package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"

	"github.com/siobridge/siobridge/internal/didyoumean"
)

// TCPReserve is what limits.max_tcp_connections = 0 leaves of the open-file limit:
// descriptors for webhooks, the proxy's connections to the app, Redis, the spool and the API.
const TCPReserve = 256

// Config is siobridge's whole configuration. Durations are strings like "300ms" in TOML/env.
//
// Every key is read from the TOML file as [section] key and from the environment as
// SIOBRIDGE_<SECTION>_<KEY>; both names come from the toml tags below (see settings), so a new
// field is a new key in both places with no other code to change. docs/configuration.md and
// config.example.toml describe every key; the tests check that they name them all.
type Config struct {
	Server   ServerConfig   `toml:"server"`
	API      APIConfig      `toml:"api"`
	SocketIO SocketIOConfig `toml:"socketio"`
	Webhook  WebhookConfig  `toml:"webhook"`
	Cluster  ClusterConfig  `toml:"cluster"`
	Limits   LimitsConfig   `toml:"limits"`
	Log      LogConfig      `toml:"log"`
}

// ServerConfig is the public listener: Socket.IO clients, and the reverse proxy to the app.
type ServerConfig struct {
	Listen   string `toml:"listen"`   // default ":7896"
	Upstream string `toml:"upstream"` // the app's base URL for the reverse proxy, e.g. "http://127.0.0.1:3000"; empty = no proxy (other paths 404)
	// TrustedProxies lists the reverse proxies (CIDRs or IPs) whose X-Forwarded-For gives the
	// client's address; default [] (the connection's address is the client's).
	TrustedProxies []string `toml:"trusted_proxies"`
	// ShutdownTimeout bounds a graceful stop (SIGTERM or SIGINT): clients are closed, then the
	// webhooks queued are given this long to be delivered; default 10s.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// MaxHeaderBytes bounds a request's header on the public port, its request line
	// included; a larger one is answered 431. Default 16384, from 1024 to 1048576.
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// BodyTimeout cuts a request body that delivers no byte for this long, on Engine.IO
	// POSTs and proxied requests alike; default 30s.
	BodyTimeout Duration `toml:"body_timeout"`
}

// APIConfig is the private REST listener the app calls.
type APIConfig struct {
	Listen       string `toml:"listen"`         // default "127.0.0.1:7897"
	Token        string `toml:"token"`          // bearer token; required, of at least 32 characters, when listen is not a loopback address
	MaxBodyBytes int64  `toml:"max_body_bytes"` // default 1048576
	Pprof        bool   `toml:"pprof"`          // default false; serves /debug/pprof/ (behind the token)
}

// SocketIOConfig configures the Socket.IO and Engine.IO server.
type SocketIOConfig struct {
	Path              string   `toml:"path"`                // default "/socket.io/" (normalized to start and end with "/")
	Namespaces        []string `toml:"namespaces"`          // default ["/"]; "*" allows any
	PingInterval      Duration `toml:"ping_interval"`       // default 25s
	PingTimeout       Duration `toml:"ping_timeout"`        // default 20s
	ConnectTimeout    Duration `toml:"connect_timeout"`     // default 45s
	UpgradeTimeout    Duration `toml:"upgrade_timeout"`     // default 10s
	MaxPayload        int64    `toml:"max_payload"`         // bytes, default 1000000
	Transports        []string `toml:"transports"`          // default ["polling","websocket"]; only those two names allowed, non-empty
	CORSOrigins       []string `toml:"cors_origins"`        // default []; "*" or absolute origins like "https://app.example.com" (scheme://host[:port], no path)
	CORSCredentials   bool     `toml:"cors_credentials"`    // default false
	MaxQueuedMessages int      `toml:"max_queued_messages"` // per connection send queue, default 4096
	// MaxDynamicNamespaces bounds the namespaces that "*" in Namespaces lets clients make and
	// that exist at once (each is removed when its last socket leaves); a CONNECT that would
	// make one more is refused. Default 1000; 0 = unlimited.
	MaxDynamicNamespaces int `toml:"max_dynamic_namespaces"`
	// Recovery is connection state recovery's window: how long a disconnected client's
	// session and the packets it missed are kept. Default "" (off); "0" is off too.
	Recovery           OffDuration `toml:"recovery"`
	RecoveryMaxPackets int         `toml:"recovery_max_packets"` // packets kept per namespace, default 10000
	RecoveryMaxBytes   int64       `toml:"recovery_max_bytes"`   // bytes of packets kept per namespace, default 67108864 (64 MiB)
	// WebSocketPoller reads idle WebSockets with one epoll poller instead of a goroutine
	// each (Linux; elsewhere it has no effect). Default true.
	WebSocketPoller bool `toml:"websocket_poller"`
	// PollingPoller holds long-polling connections in the same poller between requests,
	// instead of a net/http handler goroutine per pending poll (Linux, with
	// websocket_poller; elsewhere it has no effect). Default true.
	PollingPoller bool `toml:"polling_poller"`
	// AllowEIO3 accepts socket.io-client 2.x (Engine.IO v3, with JSONP polling) beside 4.x,
	// as Node's allowEIO3. Default false: such a handshake gets 400 "Unsupported protocol
	// version".
	AllowEIO3 bool `toml:"allow_eio3"`
}

// WebhookConfig configures the webhooks siobridge POSTs to the app.
type WebhookConfig struct {
	URL             string   `toml:"url"`               // absolute http(s) URL; empty = no webhooks (then connect/events are not forwarded)
	Secret          string   `toml:"secret"`            // HMAC-SHA256 signing secret; empty = unsigned
	Events          []string `toml:"events"`            // which kinds are sent, of "connect","event","disconnect"; default all three
	Timeout         Duration `toml:"timeout"`           // per attempt, default 5s
	RetryFor        Duration `toml:"retry_for"`         // how long an event or disconnect webhook is retried before it is given up, default 2m
	ConnectRetryFor Duration `toml:"connect_retry_for"` // the same for a connect webhook, which a client waits on, default 5s
	Retries         int      `toml:"retries"`           // caps the retries after the first attempt, 0..100; default 0 = no cap (retry_for alone bounds them)
	RetryWaitMin    Duration `toml:"retry_wait_min"`    // default 100ms
	RetryWaitMax    Duration `toml:"retry_wait_max"`    // default 5s, must be >= retry_wait_min
	Concurrency     int      `toml:"concurrency"`       // deliveries in flight across sockets, default 64, 1..10000
	QueueSize       int      `toml:"queue_size"`        // webhooks waiting per socket, default 1000
	QueueMaxBytes   int      `toml:"queue_max_bytes"`   // body bytes of the webhooks waiting per socket, default 4194304 (4 MiB)
	BatchMax        int      `toml:"batch_max"`         // event webhooks per POST, 1..1000; default 1 = each event a POST of its own
	BatchWait       Duration `toml:"batch_wait"`        // how long a batch waits to fill after its first event, 0..1s; default 2ms
	ConnectOnError  string   `toml:"connect_on_error"`  // "refuse" (default) or "accept": what a connect does when the app can't be reached after the retries
	QueueFull       string   `toml:"queue_full"`        // "disconnect" (default) or "reject": what an event does when its socket's queue is full
	SpoolDir        string   `toml:"spool_dir"`         // directory of the on-disk spool of event and disconnect webhooks; empty (default) = memory only
	SpoolMaxBytes   int64    `toml:"spool_max_bytes"`   // bytes the spool may hold on disk, default 1073741824 (1 GiB), at least 1048576
	SpoolFsync      string   `toml:"spool_fsync"`       // "always", "interval" (default: every second) or "never"

	// HandshakeHeaders lists the handshake headers that webhooks and GET /sockets show, by
	// name in any case; default ["*"], every header; [] shows none.
	HandshakeHeaders []string `toml:"handshake_headers"`
}

// LimitsConfig bounds what clients may hold and do, so that no client (or address) can take
// the sidecar's memory or the app's attention from the others. 0 means unlimited.
type LimitsConfig struct {
	MaxConnections             int `toml:"max_connections"`               // Engine.IO connections in all, default 100000
	MaxConnectionsPerIP        int `toml:"max_connections_per_ip"`        // per client address (IPv6: per /64), default 0 (unlimited)
	HandshakesPerSecondPerIP   int `toml:"handshakes_per_second_per_ip"`  // new connections per second per address, default 0 (unlimited)
	HandshakeBurstPerIP        int `toml:"handshake_burst_per_ip"`        // at once before the rate applies, default 0 (= the rate)
	EventsPerSecondPerSocket   int `toml:"events_per_second_per_socket"`  // default 100
	EventBurstPerSocket        int `toml:"event_burst_per_socket"`        // default 200
	MaxRoomsPerSocket          int `toml:"max_rooms_per_socket"`          // its own id room not counted, default 1000
	MaxNamespacesPerConnection int `toml:"max_namespaces_per_connection"` // default 10
	MaxAttachments             int `toml:"max_attachments"`               // binary attachments per packet, default 10, 1..1000
	// MaxTCPConnections bounds the open TCP connections of the public listener; default 0:
	// the process's open-file limit less tcpReserve, so that webhooks, the proxy, Redis and
	// the spool always have descriptors.
	MaxTCPConnections      int `toml:"max_tcp_connections"`
	MaxTCPConnectionsPerIP int `toml:"max_tcp_connections_per_ip"` // per client address (IPv6: per /64), trusted proxies exempt; default 0 (unlimited)
}

// ClusterConfig chooses where room membership and broadcasts live: in this process, or on a
// Redis server shared with other siobridge nodes and Node.js Socket.IO servers.
type ClusterConfig struct {
	Adapter        string   `toml:"adapter"`         // "memory" (default), "redis" (classic pub/sub), "redis-sharded" (Redis 7 sharded pub/sub) or "redis-streams" (a Redis stream)
	RedisURL       string   `toml:"redis_url"`       // default "redis://127.0.0.1:6379/0"; read when adapter is "redis", "redis-sharded" or "redis-streams"
	RedisCluster   []string `toml:"redis_cluster"`   // default []; "host:port" seed nodes of a Redis Cluster, used instead of redis_url (leave that at its default)
	KeyPrefix      string   `toml:"key_prefix"`      // channel prefix shared with the cluster, default "socket.io"
	RequestTimeout Duration `toml:"request_timeout"` // how long a cluster-wide query waits for other nodes, default 5s
}

// LogConfig configures siobridge's own log.
type LogConfig struct {
	Level  string `toml:"level"`  // debug|info|warn|error, default info
	Format string `toml:"format"` // text|json, default text
}

// Duration is a time.Duration that reads and writes as a string ("25s"); TOML integers are
// refused with an error saying to use a string like "25s".
type Duration struct{ time.Duration }

// UnmarshalText parses a duration with a unit, like "25s", "300ms" or "1m30s". A bare number
// ("25", or "0") is refused: its unit would be a guess.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := parseDuration(string(text))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// String writes d as time.Duration does, without its zero tails: "2m", "1h30m", "1m0.5s".
func (d Duration) String() string {
	s := d.Duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText writes the duration as String does ("25s", "1m30s", "2m").
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// OffDuration is a Duration that may be off: "" and "0" read as zero.
type OffDuration struct{ Duration }

// UnmarshalText parses a duration like Duration does, or "" or "0" for off.
func (d *OffDuration) UnmarshalText(text []byte) error {
	v, err := parseOffDuration(string(text))
	if err != nil {
		return err
	}
	d.Duration.Duration = v
	return nil
}

// MarshalText writes "" for off, otherwise as Duration does.
func (d OffDuration) MarshalText() ([]byte, error) {
	if d.Duration.Duration == 0 {
		return []byte{}, nil
	}
	return d.Duration.MarshalText()
}

func parseOffDuration(s string) (time.Duration, error) {
	if t := strings.TrimSpace(s); t == "" || t == "0" {
		return 0, nil
	}
	v, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w, or \"\" or \"0\" for off", err)
	}
	return v, nil
}

func parseDuration(s string) (time.Duration, error) {
	if _, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
		return 0, fmt.Errorf("invalid duration %q: use a string like \"25s\"", s)
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: use a string like \"25s\" or \"300ms\" (units ns, us, ms, s, m, h)", s)
	}
	return v, nil
}

// Limits that Validate enforces.
const (
	maxMaxPayload     = 100_000_000 // 100 MB
	maxWebhookRetries = 100
	maxConcurrency    = 10_000
	maxBatchMax       = 1000        // events per batch: 1000 events of 1 KiB make a 1 MB POST
	maxBatchWait      = time.Second // a batch's wait delays its first event's reply by as much
	maxMaxAttachments = 1000
	minSpoolMaxBytes  = 1 << 20
	minHeaderBytes    = 1 << 10
	maxHeaderBytes    = 1 << 20
	minAPITokenLen    = 32 // characters of api.token when the API listens beyond loopback
)

// Settings are read from environment variables envPrefix + SECTION_KEY; EnvConfigPath, though
// prefixed too, is no setting.
const (
	envPrefix     = "SIOBRIDGE_"
	EnvConfigPath = "SIOBRIDGE_CONFIG" // the config file's path, which the program reads
)

// DefaultRedisURL is cluster.redis_url's default. cluster.redis_cluster may be set only while
// redis_url is left at it.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// Default returns the configuration siobridge runs with when nothing is set. Each call
// returns new slices.
func Default() Config {
	return Config{
		Server: ServerConfig{
			Listen:          ":7896",
			TrustedProxies:  []string{},
			ShutdownTimeout: Duration{10 * time.Second},
			MaxHeaderBytes:  16 << 10,
			BodyTimeout:     Duration{30 * time.Second},
		},
		API: APIConfig{
			Listen:       "127.0.0.1:7897",
			MaxBodyBytes: 1 << 20,
		},
		SocketIO: SocketIOConfig{
			Path:               "/socket.io/",
			Namespaces:         []string{"/"},
			PingInterval:       Duration{25 * time.Second},
			PingTimeout:        Duration{20 * time.Second},
			ConnectTimeout:     Duration{45 * time.Second},
			UpgradeTimeout:     Duration{10 * time.Second},
			MaxPayload:         1_000_000,
			Transports:         []string{"polling", "websocket"},
			CORSOrigins:        []string{},
			MaxQueuedMessages:  4096,
			RecoveryMaxPackets: 10000,
			RecoveryMaxBytes:   64 << 20,
			WebSocketPoller:    true,
			PollingPoller:      true,

			MaxDynamicNamespaces: 1000,
		},
		Webhook: WebhookConfig{
			Events:          []string{"connect", "event", "disconnect"},
			Timeout:         Duration{5 * time.Second},
			RetryFor:        Duration{2 * time.Minute},
			ConnectRetryFor: Duration{5 * time.Second},
			RetryWaitMin:    Duration{100 * time.Millisecond},
			RetryWaitMax:    Duration{5 * time.Second},
			Concurrency:     64,
			QueueSize:       1000,
			QueueMaxBytes:   4 << 20,
			BatchMax:        1,
			BatchWait:       Duration{2 * time.Millisecond},
			ConnectOnError:  "refuse",
			QueueFull:       "disconnect",
			SpoolMaxBytes:   1 << 30,
			SpoolFsync:      "interval",

			HandshakeHeaders: []string{"*"},
		},
		Cluster: ClusterConfig{
			Adapter:        "memory",
			RedisURL:       DefaultRedisURL,
			RedisCluster:   []string{},
			KeyPrefix:      "socket.io",
			RequestTimeout: Duration{5 * time.Second},
		},
		Limits: LimitsConfig{
			MaxConnections:             100_000,
			EventsPerSecondPerSocket:   100,
			EventBurstPerSocket:        200,
			MaxRoomsPerSocket:          1000,
			MaxNamespacesPerConnection: 10,
			MaxAttachments:             10,
		},
		Log: LogConfig{
			Level:  "info",
			Format: "text",
		},
	}
}

// Load reads the TOML file at path (path "" = defaults only), then applies environment
// overrides from env (a list of "KEY=value" like os.Environ()), then validates.
//
// On error the Config is the zero value and the error has one line per problem, each starting
// with "config: " and naming the key (or environment variable, or file and line).
func Load(path string, env []string) (Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := cfg.decodeTOML(path, data); err != nil {
			return Config{}, err
		}
	}
	if err := cfg.applyEnv(env); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// ---- settings: the one table of keys, built from the toml tags ----

type settingKind int

const (
	kindString settingKind = iota
	kindInt
	kindBool
	kindStrings
	kindDuration
	kindOffDuration
)

// setting is one leaf key of Config.
type setting struct {
	section string // "webhook"
	name    string // "retry_wait_min"
	key     string // "webhook.retry_wait_min"
	env     string // "SIOBRIDGE_WEBHOOK_RETRY_WAIT_MIN"
	index   []int  // field index path from Config
	kind    settingKind
	typ     reflect.Type
}

// settings lists every key, in declaration order; sections lists the section names.
var settings, sections = buildSettings()

func buildSettings() ([]setting, []string) {
	var list []setting
	var secs []string
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		sf := ct.Field(i)
		sec := tomlName(sf)
		if sf.Type.Kind() != reflect.Struct {
			panic("config: section " + sf.Name + " is not a struct")
		}
		secs = append(secs, sec)
		for j := range sf.Type.NumField() {
			f := sf.Type.Field(j)
			name := tomlName(f)
			list = append(list, setting{
				section: sec,
				name:    name,
				key:     sec + "." + name,
				env:     envPrefix + strings.ToUpper(sec+"_"+name),
				index:   []int{i, j},
				kind:    kindOf(f),
				typ:     f.Type,
			})
		}
	}
	return list, secs
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "" || name == "-" {
		panic("config: field " + f.Name + " needs a toml tag")
	}
	return name
}

func kindOf(f reflect.StructField) settingKind {
	switch {
	case f.Type == reflect.TypeFor[Duration]():
		return kindDuration
	case f.Type == reflect.TypeFor[OffDuration]():
		return kindOffDuration
	case f.Type.Kind() == reflect.String:
		return kindString
	case f.Type.Kind() == reflect.Int || f.Type.Kind() == reflect.Int64:
		return kindInt
	case f.Type.Kind() == reflect.Bool:
		return kindBool
	case f.Type == reflect.TypeFor[[]string]():
		return kindStrings
	}
	panic("config: field " + f.Name + " has unsupported type " + f.Type.String())
}

func settingByEnv(name string) *setting {
	for i := range settings {
		if settings[i].env == name {
			return &settings[i]
		}
	}
	return nil
}

// setText sets the setting's field in root (a Config) from an environment variable's value.
func (s *setting) setText(root reflect.Value, text string) error {
	f := root.FieldByIndex(s.index)
	switch s.kind {
	case kindString:
		f.SetString(text)
	case kindInt:
		i, err := strconv.ParseInt(strings.TrimSpace(text), 10, s.typ.Bits())
		if err != nil {
			return fmt.Errorf("must be an integer, got %q", text)
		}
		f.SetInt(i)
	case kindBool:
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", text)
		}
		f.SetBool(b)
	case kindStrings:
		f.Set(reflect.ValueOf(splitList(text)))
	case kindDuration:
		d, err := parseDuration(text)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(Duration{d}))
	case kindOffDuration:
		d, err := parseOffDuration(text)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(OffDuration{Duration{d}}))
	}
	return nil
}

// splitList splits a comma-separated list, trimming spaces and dropping empty items: "" and
// " " are the empty list, "a, b," is [a b].
func splitList(s string) []string {
	list := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list
}

// checkTOML says what is wrong with v, a value decoded from TOML into an interface, as the
// setting's value; "" when nothing is.
func (s *setting) checkTOML(v any) string {
	switch s.kind {
	case kindString:
		if _, ok := v.(string); !ok {
			if s.name == "token" || s.name == "secret" { // keep secrets out of logs
				return "must be a string (in quotes), got " + strings.Fields(describeTOML(v))[0]
			}
			return "must be a string (in quotes), got " + describeTOML(v)
		}
	case kindInt:
		i, ok := v.(int64)
		if !ok {
			return "must be an integer, got " + describeTOML(v)
		}
		if reflect.New(s.typ).Elem().OverflowInt(i) {
			return fmt.Sprintf("%d is too large", i)
		}
	case kindBool:
		if _, ok := v.(bool); !ok {
			return "must be true or false, got " + describeTOML(v)
		}
	case kindStrings:
		list, ok := v.([]any)
		if !ok {
			return `must be a list of strings like ["a", "b"], got ` + describeTOML(v)
		}
		for i, item := range list {
			if _, ok := item.(string); !ok {
				return fmt.Sprintf(`must be a list of strings like ["a", "b"], but item %d is %s`, i+1, describeTOML(item))
			}
		}
	case kindDuration:
		var text string
		switch x := v.(type) {
		case string:
			text = x
		case int64:
			text = strconv.FormatInt(x, 10)
		case float64:
			text = strconv.FormatFloat(x, 'g', -1, 64)
		case bool:
			text = strconv.FormatBool(x)
		default:
			return `must be a duration string like "25s", got ` + describeTOML(v)
		}
		if _, err := parseDuration(text); err != nil {
			return err.Error()
		}
	case kindOffDuration:
		text, ok := v.(string)
		if !ok {
			return `must be a duration string like "2m", or "" or "0" for off, got ` + describeTOML(v)
		}
		if _, err := parseOffDuration(text); err != nil {
			return err.Error()
		}
	}
	return ""
}

// describeTOML names a decoded TOML value's type, with the value when it is a scalar.
func describeTOML(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("date/time %v", x)
	}
}

// ---- the TOML file ----

// decodeTOML decodes a config file's contents over c. file names the file in errors.
func (c *Config) decodeTOML(file string, data []byte) error {
	// First into a generic document: syntax errors, and values of the wrong type for every key
	// at once, by key (go-toml stops at the first, and reports a TOML integer given to a
	// Duration without its key).
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return tomlError(file, err)
	}
	if errs := checkTypes(doc); len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Then strictly into the Config: the unknown keys, all of them, with their lines.
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return tomlError(file, err)
	}
	return nil
}

// checkTypes checks the type of every known key of a decoded TOML document. Unknown keys are
// left to the strict decoder.
func checkTypes(doc map[string]any) []error {
	var errs []error
	for _, sec := range sections {
		v, ok := doc[sec]
		if !ok {
			continue
		}
		table, ok := v.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Errorf("config: %s: must be a table (a [%s] section), got %s", sec, sec, describeTOML(v)))
			continue
		}
		for i := range settings {
			s := &settings[i]
			if s.section != sec {
				continue
			}
			if v, ok := table[s.name]; ok {
				if msg := s.checkTOML(v); msg != "" {
					errs = append(errs, fmt.Errorf("config: %s: %s", s.key, msg))
				}
			}
		}
	}
	return errs
}

// tomlError turns go-toml's errors into siobridge's style.
func tomlError(file string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for i := range strict.Errors {
			e := &strict.Errors[i]
			key := strings.Join(e.Key(), ".")
			line, _ := e.Position()
			errs = append(errs, fmt.Errorf("config: unknown key %q in %s at line %d: %s", key, file, line, unknownKeyHint(key)))
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if key := strings.Join(de.Key(), "."); key != "" && isKnownKey(key) {
			return fmt.Errorf("config: %s: %s (%s at line %d, column %d)", key, msg, file, line, col)
		}
		return fmt.Errorf("config: invalid TOML in %s at line %d, column %d: %s", file, line, col, msg)
	}
	return fmt.Errorf("config: %s: %w", file, err)
}

func isKnownKey(key string) bool {
	for i := range settings {
		if settings[i].key == key {
			return true
		}
	}
	return false
}

func unknownKeyHint(key string) string {
	names := make([]string, 0, len(settings)+len(sections))
	names = append(names, sections...)
	leaf := key[strings.LastIndexByte(key, '.')+1:]
	var sameLeaf []string
	for i := range settings {
		names = append(names, settings[i].key)
		if settings[i].name == leaf {
			sameLeaf = append(sameLeaf, settings[i].key)
		}
	}
	if s := suggest(key, names, sameLeaf); s != "" {
		return s
	}
	return "remove it, or see docs/configuration.md for the keys"
}

// ---- the environment ----

// applyEnv sets the settings named by SIOBRIDGE_* variables in env ("KEY=value" items).
func (c *Config) applyEnv(env []string) error {
	var errs []error
	root := reflect.ValueOf(c).Elem()
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) || name == EnvConfigPath {
			continue
		}
		s := settingByEnv(name)
		if s == nil {
			continue // not a setting: Warnings reports it
		}
		if err := s.setText(root, value); err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func unknownEnvHint(name string) string {
	names := make([]string, 0, len(settings))
	var sameLeaf []string
	for i := range settings {
		names = append(names, settings[i].env)
		if strings.HasSuffix(name, "_"+strings.ToUpper(settings[i].name)) {
			sameLeaf = append(sameLeaf, settings[i].env)
		}
	}
	if s := suggest(name, names, sameLeaf); s != "" {
		return ": " + s
	}
	return " (docs/configuration.md lists the settings' variables)"
}

// Warnings returns what in c and env is allowed but likely a mistake, one line each in the
// style of Load's errors: the SIOBRIDGE_* variables of env that name no setting (the
// environment is shared with other tools, a wrapper's SIOBRIDGE_BIN say, so they are not
// refused; a misspelled setting still shows), and a webhook.secret with no webhook.url.
func (c *Config) Warnings(env []string) []string {
	var warns []string
	for _, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, envPrefix) && name != EnvConfigPath && settingByEnv(name) == nil {
			warns = append(warns, fmt.Sprintf("config: %s: unknown setting, ignored%s", name, unknownEnvHint(name)))
		}
	}
	if c.Webhook.Secret != "" && c.Webhook.URL == "" {
		warns = append(warns, "config: webhook.secret: is set but webhook.url is not: no webhook is sent, so nothing is signed; set webhook.url")
	}
	return warns
}

// suggest returns "did you mean ...?" naming the candidates closest to got: those in sameLeaf
// (same last word, another section) when there are any, else the nearest of names by edit
// distance when they are close; "" when nothing is close.
func suggest(got string, names, sameLeaf []string) string {
	if len(sameLeaf) > 0 {
		return didyoumean.Suggest(sameLeaf)
	}
	return didyoumean.Suggest(didyoumean.Closest(got, names))
}

// ---- validation ----

// problems collects Validate's errors, one per line, each "config: <key>: <what is wrong>".
type problems []error

func (p *problems) addf(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
}

// Validate checks every setting and returns all the problems found, joined (errors.Join), or
// nil. It also normalizes socketio.path to start and end with "/".
func (c *Config) Validate() error {
	var p problems

	// Listeners.
	serverHost, serverPort, serverOK := p.listenAddr("server.listen", c.Server.Listen)
	apiHost, apiPort, apiOK := p.listenAddr("api.listen", c.API.Listen)
	if serverOK && apiOK && serverPort == apiPort && serverPort != "0" &&
		(serverHost == apiHost || isWildcardHost(serverHost) || isWildcardHost(apiHost)) {
		p.addf("api.listen", "%q overlaps server.listen (%q): give the API its own port", c.API.Listen, c.Server.Listen)
	}
	if c.Server.Upstream != "" {
		if p.httpURL("server.upstream", c.Server.Upstream) {
			if u, _ := url.Parse(c.Server.Upstream); u.RawQuery != "" {
				p.addf("server.upstream", "must not have a query (the proxy sends the client's own), got %q", c.Server.Upstream)
			}
		}
	}

	for _, tp := range c.Server.TrustedProxies {
		if _, err := parsePrefix(tp); err != nil {
			p.addf("server.trusted_proxies", `%q is not an IP address or CIDR: use entries like "10.0.0.0/8" or "192.0.2.7"`, tp)
		}
	}
	p.positive("server.shutdown_timeout", c.Server.ShutdownTimeout)
	if c.Server.MaxHeaderBytes < minHeaderBytes || c.Server.MaxHeaderBytes > maxHeaderBytes {
		p.addf("server.max_header_bytes", "must be from %d to %d (bytes), got %d", minHeaderBytes, maxHeaderBytes, c.Server.MaxHeaderBytes)
	}
	p.positive("server.body_timeout", c.Server.BodyTimeout)

	// API.
	if apiOK && !isLoopbackHost(apiHost) {
		// Beyond loopback the token is all that keeps the network from every client: it must
		// be too long to guess.
		switch n := utf8.RuneCountInString(c.API.Token); {
		case n == 0:
			p.addf("api.token", "required when api.listen (%s) is not a loopback address: set api.token (or %s), or listen on 127.0.0.1",
				c.API.Listen, settingEnv("api.token"))
		case n < minAPITokenLen:
			p.addf("api.token", "must be at least %d characters when api.listen (%s) is not a loopback address, got %d: make one with `openssl rand -hex 32`",
				minAPITokenLen, c.API.Listen, n)
		}
	}
	if c.API.Token != "" && strings.TrimSpace(c.API.Token) != c.API.Token {
		p.addf("api.token", "must not start or end with whitespace (an Authorization header's value never does)")
	}
	if c.API.MaxBodyBytes <= 0 {
		p.addf("api.max_body_bytes", "must be at least 1 (bytes), got %d", c.API.MaxBodyBytes)
	}

	// Socket.IO.
	c.SocketIO.Path = normalizePath(c.SocketIO.Path)
	switch sp := c.SocketIO.Path; {
	case sp == "":
		p.addf("socketio.path", `must not be empty: use a path like "/socket.io/"`)
	case strings.ContainsAny(sp, "?#%\\") || strings.IndexFunc(sp, isSpaceOrControl) >= 0 ||
		(sp != "/" && path.Clean(sp)+"/" != sp):
		p.addf("socketio.path", `must be a plain URL path like "/socket.io/", got %q`, sp)
	case sp == "/" && c.Server.Upstream != "":
		p.addf("socketio.path", `must not be "/" when server.upstream is set: Socket.IO would take every request; use a path like "/socket.io/"`)
	}
	if len(c.SocketIO.Namespaces) == 0 {
		p.addf("socketio.namespaces", `must not be empty: use ["/"] for the main namespace, or ["*"] to allow any`)
	}
	for _, ns := range c.SocketIO.Namespaces {
		if ns != "*" && !strings.HasPrefix(ns, "/") {
			p.addf("socketio.namespaces", `%q must start with "/", like "/chat" (or be "*" to allow any namespace)`, ns)
		}
	}
	if c.SocketIO.MaxDynamicNamespaces < 0 {
		p.addf("socketio.max_dynamic_namespaces", "must be 0 (unlimited) or more (namespaces), got %d", c.SocketIO.MaxDynamicNamespaces)
	}
	p.positive("socketio.ping_interval", c.SocketIO.PingInterval)
	p.positive("socketio.ping_timeout", c.SocketIO.PingTimeout)
	p.positive("socketio.connect_timeout", c.SocketIO.ConnectTimeout)
	p.positive("socketio.upgrade_timeout", c.SocketIO.UpgradeTimeout)
	if c.SocketIO.MaxPayload <= 0 || c.SocketIO.MaxPayload > maxMaxPayload {
		p.addf("socketio.max_payload", "must be from 1 to %d bytes (100 MB), got %d", maxMaxPayload, c.SocketIO.MaxPayload)
	}
	if len(c.SocketIO.Transports) == 0 {
		p.addf("socketio.transports", `must not be empty: use ["polling", "websocket"], or one of them`)
	}
	for _, t := range c.SocketIO.Transports {
		if t != "polling" && t != "websocket" {
			p.addf("socketio.transports", `unknown transport %q: use "polling" and/or "websocket"`, t)
		}
	}
	wildcard := false
	for _, o := range c.SocketIO.CORSOrigins {
		if o == "*" {
			wildcard = true
		} else if !isOrigin(o) {
			p.addf("socketio.cors_origins", `%q is not an origin: use "*" or scheme://host[:port] like "https://app.example.com", with no path or trailing slash`, o)
		}
	}
	if wildcard && c.SocketIO.CORSCredentials {
		p.addf("socketio.cors_credentials", `must be false when socketio.cors_origins has "*" (any web site could make credentialed requests): list the origins instead`)
	}
	if c.SocketIO.MaxQueuedMessages <= 0 {
		p.addf("socketio.max_queued_messages", "must be at least 1 (messages), got %d", c.SocketIO.MaxQueuedMessages)
	}
	if c.SocketIO.Recovery.Duration.Duration < 0 {
		p.addf("socketio.recovery", `must be a positive duration like "2m", or "" or "0" for off, got %q`, c.SocketIO.Recovery.Duration.String())
	}
	if c.SocketIO.Recovery.Duration.Duration > 0 && c.Cluster.Adapter != "memory" && c.Cluster.Adapter != "redis-streams" {
		p.addf("socketio.recovery", `connection state recovery works on a single node (cluster.adapter = "memory") or across nodes with cluster.adapter = "redis-streams", not with %q: set it to "" or use one of those adapters`, c.Cluster.Adapter)
	}
	if c.SocketIO.RecoveryMaxPackets <= 0 {
		p.addf("socketio.recovery_max_packets", "must be at least 1 (packets), got %d", c.SocketIO.RecoveryMaxPackets)
	}
	if c.SocketIO.RecoveryMaxBytes <= 0 {
		p.addf("socketio.recovery_max_bytes", "must be at least 1 (bytes), got %d", c.SocketIO.RecoveryMaxBytes)
	}

	// Webhooks.
	if c.Webhook.URL != "" {
		p.httpURL("webhook.url", c.Webhook.URL)
	}
	for _, e := range c.Webhook.Events {
		if e != "connect" && e != "event" && e != "disconnect" {
			p.addf("webhook.events", `unknown kind %q: use "connect", "event" and/or "disconnect"`, e)
		}
	}
	for _, h := range c.Webhook.HandshakeHeaders {
		if h != "*" && !isHeaderName(h) {
			p.addf("webhook.handshake_headers", "%q is not a header name: list names like \"user-agent\" or \"x-forwarded-for\" (letters, digits and !#$%%&'*+-.^_`|~), or [\"*\"] for every header", h)
		}
	}
	if len(c.Webhook.HandshakeHeaders) > 1 && slices.Contains(c.Webhook.HandshakeHeaders, "*") {
		p.addf("webhook.handshake_headers", `"*" stands for every header: use ["*"] alone, or list names without it`)
	}
	p.positive("webhook.timeout", c.Webhook.Timeout)
	p.positive("webhook.retry_for", c.Webhook.RetryFor)
	p.positive("webhook.connect_retry_for", c.Webhook.ConnectRetryFor)
	if c.Webhook.Retries < 0 || c.Webhook.Retries > maxWebhookRetries {
		p.addf("webhook.retries", "must be from 0 to %d, got %d", maxWebhookRetries, c.Webhook.Retries)
	}
	minOK := p.positive("webhook.retry_wait_min", c.Webhook.RetryWaitMin)
	if p.positive("webhook.retry_wait_max", c.Webhook.RetryWaitMax) && minOK &&
		c.Webhook.RetryWaitMax.Duration < c.Webhook.RetryWaitMin.Duration {
		p.addf("webhook.retry_wait_max", "must be at least webhook.retry_wait_min (%q), got %q", c.Webhook.RetryWaitMin.String(), c.Webhook.RetryWaitMax.String())
	}
	if c.Webhook.Concurrency < 1 || c.Webhook.Concurrency > maxConcurrency {
		p.addf("webhook.concurrency", "must be from 1 to %d, got %d", maxConcurrency, c.Webhook.Concurrency)
	}
	if c.Webhook.QueueSize < 1 {
		p.addf("webhook.queue_size", "must be at least 1 (webhooks), got %d", c.Webhook.QueueSize)
	}
	if c.Webhook.QueueMaxBytes < 1 {
		p.addf("webhook.queue_max_bytes", "must be at least 1 (bytes), got %d", c.Webhook.QueueMaxBytes)
	}
	if c.Webhook.BatchMax < 1 || c.Webhook.BatchMax > maxBatchMax {
		p.addf("webhook.batch_max", "must be from 1 (no batches: each event webhook is a POST of its own) to %d, got %d", maxBatchMax, c.Webhook.BatchMax)
	}
	if c.Webhook.BatchWait.Duration < 0 || c.Webhook.BatchWait.Duration > maxBatchWait {
		p.addf("webhook.batch_wait", `must be from "0s" (send what is ready at once) to %q, got %q`, maxBatchWait.String(), c.Webhook.BatchWait.String())
	}
	if c.Webhook.ConnectOnError != "refuse" && c.Webhook.ConnectOnError != "accept" {
		p.addf("webhook.connect_on_error", `must be "refuse" or "accept", got %q`, c.Webhook.ConnectOnError)
	}

	if c.Webhook.QueueFull != "disconnect" && c.Webhook.QueueFull != "reject" {
		p.addf("webhook.queue_full", `must be "disconnect" or "reject", got %q`, c.Webhook.QueueFull)
	}
	if c.Webhook.SpoolMaxBytes < minSpoolMaxBytes {
		p.addf("webhook.spool_max_bytes", "must be at least %d (1 MiB), got %d", minSpoolMaxBytes, c.Webhook.SpoolMaxBytes)
	}
	switch c.Webhook.SpoolFsync {
	case "always", "interval", "never":
	default:
		p.addf("webhook.spool_fsync", `must be "always", "interval" or "never", got %q`, c.Webhook.SpoolFsync)
	}
	if c.Webhook.SpoolDir != "" && c.Webhook.URL == "" {
		p.addf("webhook.spool_dir", "is set but webhook.url is not: there is nothing to spool; set webhook.url, or leave spool_dir empty")
	}

	// Limits: 0 is unlimited, a negative number a mistake.
	for _, l := range []struct {
		key string
		v   int
	}{
		{"limits.max_connections", c.Limits.MaxConnections},
		{"limits.max_connections_per_ip", c.Limits.MaxConnectionsPerIP},
		{"limits.handshakes_per_second_per_ip", c.Limits.HandshakesPerSecondPerIP},
		{"limits.handshake_burst_per_ip", c.Limits.HandshakeBurstPerIP},
		{"limits.events_per_second_per_socket", c.Limits.EventsPerSecondPerSocket},
		{"limits.event_burst_per_socket", c.Limits.EventBurstPerSocket},
		{"limits.max_rooms_per_socket", c.Limits.MaxRoomsPerSocket},
		{"limits.max_namespaces_per_connection", c.Limits.MaxNamespacesPerConnection},
		{"limits.max_tcp_connections_per_ip", c.Limits.MaxTCPConnectionsPerIP},
	} {
		if l.v < 0 {
			p.addf(l.key, "must be 0 (unlimited) or more, got %d", l.v)
		}
	}
	if c.Limits.MaxTCPConnections < 0 {
		p.addf("limits.max_tcp_connections", "must be 0 (the open-file limit less %d) or more, got %d", TCPReserve, c.Limits.MaxTCPConnections)
	}
	if c.Limits.MaxAttachments < 1 || c.Limits.MaxAttachments > maxMaxAttachments {
		p.addf("limits.max_attachments", "must be from 1 to %d, got %d", maxMaxAttachments, c.Limits.MaxAttachments)
	}

	// Cluster.
	switch c.Cluster.Adapter {
	case "memory":
	case "redis", "redis-sharded", "redis-streams":
		if u, err := url.Parse(c.Cluster.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			p.addf("cluster.redis_url", `must be a redis://, rediss:// or unix:// URL, got %q`, c.Cluster.RedisURL)
		}
		if len(c.Cluster.RedisCluster) > 0 && c.Cluster.RedisURL != DefaultRedisURL {
			p.addf("cluster.redis_cluster", `and cluster.redis_url are both set (to %q): name either one Redis server (redis_url) or the seed nodes of a Redis Cluster (redis_cluster), not both`, c.Cluster.RedisURL)
		}
	default:
		p.addf("cluster.adapter", `must be "memory", "redis", "redis-sharded" or "redis-streams", got %q`, c.Cluster.Adapter)
	}
	for _, addr := range c.Cluster.RedisCluster {
		host, port, err := net.SplitHostPort(addr)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			p.addf("cluster.redis_cluster", `entries must be "host:port" seed nodes of a Redis Cluster (like "10.0.0.5:6379"), got %q`, addr)
		}
	}
	if c.Cluster.KeyPrefix == "" || strings.ContainsAny(c.Cluster.KeyPrefix, "#*?[]") {
		p.addf("cluster.key_prefix", `must be a non-empty prefix without "#", "*", "?", "[" or "]", got %q`, c.Cluster.KeyPrefix)
	}
	if c.Cluster.RequestTimeout.Duration <= 0 {
		p.addf("cluster.request_timeout", "must be a positive duration, got %q", c.Cluster.RequestTimeout.String())
	}

	// Log.
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.addf("log.level", `must be "debug", "info", "warn" or "error", got %q`, c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		p.addf("log.format", `must be "text" or "json", got %q`, c.Log.Format)
	}

	return errors.Join(p...)
}

// listenAddr checks a host:port listen address and returns its parts.
func (p *problems) listenAddr(key, addr string) (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || strings.IndexFunc(host, isSpaceOrControl) >= 0 {
		p.addf(key, `must be host:port like ":7896" or "127.0.0.1:7896", got %q`, addr)
		return "", "", false
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		p.addf(key, "port must be a number from 0 to 65535, got %q in %q", port, addr)
		return "", "", false
	}
	return host, port, true
}

// httpURL checks an absolute http(s) URL with a host and no fragment.
func (p *problems) httpURL(key, s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		hint := ""
		if v, err := url.Parse("http://" + s); err == nil && v.Host != "" && !strings.Contains(s, "://") {
			hint = fmt.Sprintf(`: did you mean "http://%s"?`, s)
		}
		p.addf(key, "must be an absolute http(s) URL, got %q%s", s, hint)
		return false
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		p.addf(key, "must not have a #fragment, got %q", s)
		return false
	}
	return true
}

// positive checks that a duration is greater than zero.
func (p *problems) positive(key string, d Duration) bool {
	if d.Duration <= 0 {
		p.addf(key, `must be a positive duration like "25s", got %q`, d.String())
		return false
	}
	return true
}

// normalizePath makes a non-empty path start and end with "/".
func normalizePath(p string) string {
	if p == "" {
		return ""
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// isLoopbackHost reports whether a listen host only accepts local connections: "localhost" or
// a loopback IP. The empty host, 0.0.0.0 and :: listen on every interface.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isWildcardHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// isOrigin reports whether s is a web origin: scheme://host[:port], nothing more.
func isOrigin(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#") {
		return false
	}
	if port := u.Port(); port != "" {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return false
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return false
	}
	return strings.EqualFold(s, u.Scheme+"://"+u.Host)
}

// isHeaderName reports whether s is an HTTP header name: a token (RFC 9110, 5.6.2).
func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}

// parsePrefix reads a trusted proxy: a CIDR ("10.0.0.0/8") or one address ("192.0.2.7").
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// TrustedProxyPrefixes returns server.trusted_proxies parsed; Validate has checked them.
func (c *ServerConfig) TrustedProxyPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.TrustedProxies))
	for _, s := range c.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// settingEnv returns the environment variable of a key.
func settingEnv(key string) string {
	for i := range settings {
		if settings[i].key == key {
			return settings[i].env
		}
	}
	return ""
}
