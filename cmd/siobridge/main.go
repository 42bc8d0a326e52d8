// Command siobridge runs the sidecar: it holds every Socket.IO client of a web app, sends what
// they do to the app as webhooks, takes the app's REST calls on a private API listener, and
// reverse-proxies every other request to the app.
//
//	siobridge -config config.toml
//
// Every setting can also come from SIOBRIDGE_* environment variables; see
// docs/configuration.md. Without -config (or SIOBRIDGE_CONFIG), /etc/siobridge/config.toml
// is read if it exists. siobridge -healthcheck asks a running siobridge's API for /healthz.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/siobridge/siobridge/engineio"
	"github.com/siobridge/siobridge/internal/api"
	"github.com/siobridge/siobridge/internal/config"
	"github.com/siobridge/siobridge/internal/edge"
	"github.com/siobridge/siobridge/internal/spool"
	"github.com/siobridge/siobridge/proxy"
	"github.com/siobridge/siobridge/socketio"
	"github.com/siobridge/siobridge/socketio/redisadapter"
	"github.com/siobridge/siobridge/webhook"
)

// version is set by the build (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stderr, nil); err != nil {
		// One line per problem (a configuration's are joined), each naming the program.
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Fprintln(os.Stderr, "siobridge:", line)
		}
		os.Exit(1)
	}
}

// defaultConfigPath is the config file read when neither -config nor SIOBRIDGE_CONFIG names
// one, if it exists: where the image's users mount theirs.
const defaultConfigPath = "/etc/siobridge/config.toml"

// run starts siobridge and serves until ctx ends. ready, when not nil, receives the
// listeners' addresses once both are serving (tests use it).
func run(ctx context.Context, args, env []string, stderr io.Writer, ready func(public, apiAddr net.Addr)) error {
	fs := flag.NewFlagSet("siobridge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: siobridge [-config file] [-check | -healthcheck | -version]")
		fmt.Fprintln(stderr, "Every setting can also be set by a SIOBRIDGE_<SECTION>_<KEY> environment variable (docs/configuration.md).")
		fs.PrintDefaults()
	}
	configFlag := fs.String("config", "", "path of the TOML config file (env SIOBRIDGE_CONFIG); default "+defaultConfigPath+" if it exists; \"\": none, defaults and environment only")
	check := fs.Bool("check", false, "validate the configuration and exit")
	health := fs.Bool("healthcheck", false, "ask the running siobridge's API (api.listen, with api.token) for /healthz; exit 0 if it answers 200, else 1")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h: the usage is printed
		}
		return err
	}
	if *showVersion {
		fmt.Fprintln(stderr, "siobridge", version)
		return nil
	}
	configSet := false
	fs.Visit(func(f *flag.Flag) { configSet = configSet || f.Name == "config" })
	configPath := configFile(*configFlag, configSet, env, defaultConfigPath)
	cfg, err := config.Load(configPath, env)
	if err != nil {
		return err
	}
	if *health {
		return healthcheck(ctx, cfg.API)
	}
	log := newLogger(cfg.Log, stderr)
	for _, w := range cfg.Warnings(env) {
		log.Warn(w)
	}
	if err := checkSpoolDir(cfg.Webhook.SpoolDir); err != nil {
		return err
	}
	if *check {
		fmt.Fprintln(stderr, "siobridge: configuration ok,", describeConfigFile(configPath))
		return nil
	}
	log.Info("configuration loaded", "file", configPath)
	return serve(ctx, cfg, log, ready)
}

// configFile returns the config file to read: -config's when given, else SIOBRIDGE_CONFIG's
// when set ("" in either: none), else def when it exists (else none).
func configFile(flagValue string, flagSet bool, env []string, def string) string {
	if flagSet {
		return flagValue
	}
	if v, ok := lookupEnv(env, config.EnvConfigPath); ok {
		return v
	}
	if _, err := os.Stat(def); errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return def // or an error reading it, which config.Load reports
}

func describeConfigFile(path string) string {
	if path == "" {
		return "from the defaults and the environment (no config file)"
	}
	return "from " + path + " and the environment"
}

func lookupEnv(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// redisClient is the go-redis client of the cluster adapters: a cluster client when
// cluster.redis_cluster names the seed nodes of a Redis Cluster, else a client of the one
// server at cluster.redis_url.
func redisClient(cfg config.Config) (redis.UniversalClient, error) {
	if seeds := cfg.Cluster.RedisCluster; len(seeds) > 0 {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds}), nil
	}
	opts, err := redis.ParseURL(cfg.Cluster.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("cluster.redis_url: %w", err)
	}
	return redis.NewClient(opts), nil
}

func serve(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(public, apiAddr net.Addr)) (err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	sio := cfg.SocketIO
	var cluster socketio.ClusterFactory // nil: every namespace is this node's alone
	if cfg.Cluster.Adapter != "memory" {
		rdb, err := redisClient(cfg)
		if err != nil {
			return err
		}
		defer rdb.Close()
		dropped := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "siobridge_cluster_publish_dropped_total",
			Help: "Messages for other nodes dropped because more waited for Redis than the adapter keeps.",
		})
		reg.MustRegister(dropped)
		malformed := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "siobridge_cluster_malformed_total",
			Help: "Messages from Redis the sharded or streams adapter could not read and dropped.",
		})
		reg.MustRegister(malformed)
		adapterOpts := redisadapter.Options{
			Client:         rdb,
			KeyPrefix:      cfg.Cluster.KeyPrefix,
			RequestTimeout: cfg.Cluster.RequestTimeout.Duration,
			Logger:         log,
			OnDrop:         func(n int) { dropped.Add(float64(n)) },
			OnMalformed:    malformed.Inc,
		}
		switch cfg.Cluster.Adapter {
		case "redis-sharded":
			cluster = redisadapter.NewSharded(adapterOpts)
		case "redis-streams":
			// With [socketio] recovery, each namespace's streams adapter is its session
			// store: a client may come back on any node.
			cluster = redisadapter.NewStreams(adapterOpts)
		default:
			cluster = redisadapter.New(adapterOpts)
		}
	}
	// The limits' hooks count into proxyMetrics, made once the server exists; they run only
	// for requests, served after both are made.
	var proxyMetrics *proxy.Metrics
	onLimit := func(limit string) { proxyMetrics.LimitHit(limit) }
	lim := cfg.Limits
	// Polls held by the poller come back to the public server through handoff when their
	// connection carries something else (see engineio.Options.PollingHandoff).
	var handoff *engineio.HandoffListener
	var pollingHandoff func(net.Conn)
	if sio.PollingPoller && sio.WebSocketPoller {
		handoff = engineio.NewHandoffListener(nil)
		pollingHandoff = handoff.Handoff
	}
	srv := socketio.NewServer(socketio.Options{
		Cluster: cluster,
		Recovery: socketio.RecoveryOptions{
			MaxDisconnection: sio.Recovery.Duration.Duration,
			MaxPackets:       sio.RecoveryMaxPackets,
			MaxBytes:         int(sio.RecoveryMaxBytes),
			// Each kept session was a connection: no more than the connections allowed.
			MaxSessions: lim.MaxConnections,
		},
		Engine: engineio.Options{
			PingInterval:       sio.PingInterval.Duration,
			PingTimeout:        sio.PingTimeout.Duration,
			UpgradeTimeout:     sio.UpgradeTimeout.Duration,
			MaxPayload:         sio.MaxPayload,
			Transports:         sio.Transports,
			MaxQueuedMessages:  sio.MaxQueuedMessages,
			CORSOrigins:        sio.CORSOrigins,
			CORSCredentials:    sio.CORSCredentials,
			MaxSessions:        lim.MaxConnections,
			MaxSessionsPerAddr: lim.MaxConnectionsPerIP,
			HandshakeRate:      float64(lim.HandshakesPerSecondPerIP),
			HandshakeBurst:     lim.HandshakeBurstPerIP,
			TrustedProxies:     cfg.Server.TrustedProxyPrefixes(),
			OnLimit:            onLimit,
			Logger:             log,
			// An escape hatch: the poller is the default and what the tests run.
			DisableWebSocketPoller: !sio.WebSocketPoller,
			PollingHandoff:         pollingHandoff,
			PollingPath:            sio.Path,
			MaxHeaderBytes:         cfg.Server.MaxHeaderBytes,
			PollingIdleTimeout:     idleTimeout,
			PollingHeaderTimeout:   readHeaderTimeout,
			PollingBodyTimeout:     cfg.Server.BodyTimeout.Duration,
			AllowEIO3:              sio.AllowEIO3,
		},
		Namespaces:                 sio.Namespaces,
		MaxDynamicNamespaces:       sio.MaxDynamicNamespaces,
		ConnectTimeout:             sio.ConnectTimeout.Duration,
		MaxNamespacesPerConnection: lim.MaxNamespacesPerConnection,
		MaxRoomsPerSocket:          lim.MaxRoomsPerSocket,
		MaxAttachments:             lim.MaxAttachments,
		EventsPerSecond:            float64(lim.EventsPerSecondPerSocket),
		EventBurst:                 lim.EventBurstPerSocket,
		OnLimit:                    onLimit,
		Logger:                     log,
	})
	proxyMetrics = proxy.NewMetrics(reg, srv)
	webhookMetrics := webhook.NewMetrics(reg)
	// What the webhooks and GET /sockets show of each handshake's headers.
	handshakeHeaders := webhook.KeepHeaders(cfg.Webhook.HandshakeHeaders...)

	var (
		deliverer *webhook.Deliverer
		bridge    *webhook.Bridge
		spl       *spool.Spool
	)
	defer func() {
		if spl != nil {
			if err := spl.Close(); err != nil {
				log.Error("closing the webhook spool", "err", err)
			}
		}
	}()
	if wh := cfg.Webhook; wh.URL != "" {
		if wh.SpoolDir != "" {
			spl, err = spool.Open(spool.Options{
				Dir:      wh.SpoolDir,
				MaxBytes: wh.SpoolMaxBytes,
				Fsync:    spool.FsyncPolicy(wh.SpoolFsync),
				Logger:   log,
			})
			if err != nil {
				return fmt.Errorf("webhook.spool_dir: %w", err)
			}
			reg.MustRegister(
				prometheus.NewGaugeFunc(prometheus.GaugeOpts{
					Name: "siobridge_webhook_spool_bytes",
					Help: "Size of the webhook spool's segment files, in bytes.",
				}, func() float64 { return float64(spl.Bytes()) }),
				prometheus.NewGaugeFunc(prometheus.GaugeOpts{
					Name: "siobridge_webhook_spool_pending",
					Help: "Webhooks in the spool not yet settled.",
				}, func() float64 { return float64(spl.Pending()) }),
			)
		}
		deliverer = webhook.NewDeliverer(webhook.DelivererOptions{
			URL:             wh.URL,
			Secret:          wh.Secret,
			Timeout:         wh.Timeout.Duration,
			RetryFor:        wh.RetryFor.Duration,
			ConnectRetryFor: wh.ConnectRetryFor.Duration,
			MaxAttempts:     maxAttempts(wh.Retries),
			RetryWaitMin:    wh.RetryWaitMin.Duration,
			RetryWaitMax:    wh.RetryWaitMax.Duration,
			Concurrency:     wh.Concurrency,
			QueueSize:       wh.QueueSize,
			QueueBytes:      wh.QueueMaxBytes,
			BatchMax:        wh.BatchMax,
			BatchWait:       wh.BatchWait.Duration,
			UserAgent:       "siobridge/" + version,
			Logger:          log,
			Metrics:         webhookMetrics,
			Spool:           spl,
		})
		kinds := make([]webhook.Kind, 0, len(wh.Events))
		for _, k := range wh.Events {
			kinds = append(kinds, webhook.Kind(k))
		}
		bridge = webhook.NewBridge(webhook.BridgeOptions{
			Server:           srv,
			Deliverer:        deliverer,
			Kinds:            kinds,
			AcceptOnError:    wh.ConnectOnError == "accept",
			QueueFull:        webhook.QueueFullPolicy(wh.QueueFull),
			HandshakeHeaders: handshakeHeaders,
			Metrics:          webhookMetrics,
			Logger:           log,
		})
		// A return before the shutdown below (a listener that cannot be opened) still ends
		// the deliverer's workers; after the shutdown's Close, this one returns at once.
		defer func() {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			bridge.Close(ctx)
		}()
	} else {
		log.Warn("no webhook.url set: client connections are accepted and their events are not forwarded")
	}

	bundle, ok := proxy.ClientBundle()
	if !ok {
		log.Warn("the socket.io-client bundle is not in this build: " + sio.Path + "socket.io.js will answer 404; build with `make build` (which runs `make bundle`) to include it")
	}
	var upstream *url.URL
	if cfg.Server.Upstream != "" {
		if upstream, err = url.Parse(cfg.Server.Upstream); err != nil {
			return fmt.Errorf("server.upstream: %w", err) // Validate has checked it already
		}
	}
	public, err := proxy.NewPublic(proxy.PublicOptions{
		SocketIO: srv,
		Path:     sio.Path,
		Bundle:   bundle,
		Upstream: upstream,
		Logger:   log,
		Metrics:  proxyMetrics,
	})
	if err != nil {
		return err
	}
	var stopping atomic.Bool
	apiHandler := api.New(api.Options{
		Server:           srv,
		Token:            cfg.API.Token,
		MaxBodyBytes:     cfg.API.MaxBodyBytes,
		HandshakeHeaders: handshakeHeaders,
		Pprof:            cfg.API.Pprof,
		Ready: func() error {
			if stopping.Load() {
				return errors.New("shutting down")
			}
			return clusterHealth(srv)
		},
		Gatherer: reg,
		Metrics:  proxyMetrics,
		Logger:   log,
	})

	publicLn, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	apiLn, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		publicLn.Close()
		return fmt.Errorf("api.listen: %w", err)
	}
	// The public port faces the internet: its connections are guarded and counted (see
	// internal/edge), and so are those the held polls hand back.
	maxTCP := tcpConnLimit(lim.MaxTCPConnections)
	guard := edge.New(edge.Options{
		MaxHeaderBytes:  cfg.Server.MaxHeaderBytes,
		BodyTimeout:     cfg.Server.BodyTimeout.Duration,
		MaxConns:        maxTCP,
		MaxConnsPerAddr: lim.MaxTCPConnectionsPerIP,
		TrustedProxies:  cfg.Server.TrustedProxyPrefixes(),
		OnRefuse:        onLimit,
		Logger:          log,
	})
	publicSrv := &http.Server{Handler: public, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	guard.Server(publicSrv)
	apiSrv := &http.Server{Handler: apiHandler, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	// Each Serve runs until its server's Shutdown (the held polls' listener, handoff, ends with
	// publicSrv's); the first to return otherwise stops siobridge, and run waits for all of
	// them before it returns.
	var serving sync.WaitGroup
	defer serving.Wait()
	errs := make(chan error, 3)
	serve := func(srv *http.Server, ln net.Listener) { serving.Go(func() { errs <- srv.Serve(ln) }) }
	serve(publicSrv, guard.Listener(publicLn))
	serve(apiSrv, apiLn)
	if handoff != nil {
		serve(publicSrv, handoff)
	}
	releaseCtx, stopRelease := context.WithCancel(ctx)
	released := make(chan struct{})
	serving.Go(func() {
		defer close(released)
		releaseAfterDrops(releaseCtx, srv.Engine().Len, log)
	})
	defer func() {
		stopRelease()
		<-released
	}()
	log.Info("siobridge serving",
		"version", version,
		"public", publicLn.Addr().String(),
		"socketio_path", sio.Path,
		"api", apiLn.Addr().String(),
		"upstream", cfg.Server.Upstream,
		"webhook", cfg.Webhook.URL,
		"cluster", cfg.Cluster.Adapter,
		"max_tcp_connections", maxTCP,
		"websocket_poller", sio.WebSocketPoller && runtime.GOOS == "linux",
		"polling_poller", handoff != nil && runtime.GOOS == "linux")
	if ready != nil {
		ready(publicLn.Addr(), apiLn.Addr())
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("siobridge stopping")
	case serveErr = <-errs:
		log.Error("listener failed", "err", serveErr)
	}
	stopping.Store(true)

	// Stop taking new clients, then end the connected ones (each gets an Engine.IO close, and
	// its sockets' disconnect webhooks are queued), then let the webhooks finish until the
	// deadline, then close the API. The spool, if any, keeps what is left for the next start.
	timeout := cfg.Server.ShutdownTimeout.Duration
	shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = publicLn.Close()
	srv.Close()
	_ = publicSrv.Shutdown(shutdownCtx)
	if bridge != nil {
		pending := deliverer.Pending()
		log.Info("clients disconnected; delivering the queued webhooks", "pending", pending, "shutdown_timeout", timeout.String())
		before := deliverer.Settled()
		n := bridge.Close(shutdownCtx)
		after := deliverer.Settled()
		// Settled counts what Close cancelled and did not keep as given up too.
		delivered, refused, givenUp := after.Delivered-before.Delivered, after.Refused-before.Refused, after.GivenUp-before.GivenUp
		if n > 0 {
			kept := deliverer.Kept()
			log.Warn("shutdown_timeout passed with webhooks undelivered",
				"timeout", timeout.String(), "pending_at_stop", pending, "delivered", delivered, "refused", refused,
				"given_up", givenUp, "kept_in_spool", kept, "spool", cfg.Webhook.SpoolDir)
		} else {
			level := slog.LevelInfo
			if givenUp > 0 {
				level = slog.LevelWarn
			}
			log.Log(context.Background(), level, "webhooks settled before stopping",
				"delivered", delivered, "refused", refused, "given_up", givenUp)
		}
	}
	_ = apiSrv.Shutdown(shutdownCtx)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// The public and API servers' timeouts between requests and for a request's header; held
// polls keep the same.
const (
	idleTimeout       = 2 * time.Minute
	readHeaderTimeout = 10 * time.Second
)

// tcpConnLimit is the cap on the public listener's connections: configured, or the open-file
// limit less config.TCPReserve (0, no cap, where there is no such limit).
func tcpConnLimit(configured int) int {
	if configured > 0 {
		return configured
	}
	if n := openFileLimit(); n > 0 {
		return max(n-config.TCPReserve, n/2)
	}
	return 0
}

// clusterHealth reports a cluster adapter that has lost its connection (Redis down): the node
// still serves its own clients, but its broadcasts no longer reach the others. Dynamic
// namespaces are left out: their adapters share the connection of "/", and one that a client
// has just made is not subscribed for a moment, which says nothing about the node.
func clusterHealth(srv *socketio.Server) error {
	for _, ns := range srv.Namespaces() {
		if ns.Dynamic() {
			continue
		}
		if err := ns.ClusterHealth(); err != nil {
			return fmt.Errorf("cluster adapter of namespace %s: %w", ns.Name(), err)
		}
	}
	return nil
}

// maxAttempts turns webhook.retries (0: no cap) into the deliverer's MaxAttempts (0: no cap).
func maxAttempts(retries int) int {
	if retries <= 0 {
		return 0
	}
	return retries + 1
}
