package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The two servers siobench measures.
const (
	serverSiobridge = "siobridge"
	serverReference = "reference"
)

// serverConfig says how to start the servers.
type serverConfig struct {
	siobridgeBin string   // path of the siobridge binary
	referenceJS  string   // path of reference/bridge.js
	cpu          string   // taskset -c list for the server; "" runs unpinned
	siobridgeEnv []string // extra KEY=VALUE settings for siobridge, after siobench's own
}

// server is one running server process.
type server struct {
	name   string
	cmd    *exec.Cmd
	pid    int
	public string // host:port of the Socket.IO listener
	api    string // host:port of the REST API (POST /emit)
	log    *tailBuffer
	exited chan struct{}
}

// startServer starts the named server with its webhooks going to hookURL and waits until its
// API answers /healthz.
func startServer(ctx context.Context, cfg serverConfig, name, hookURL string) (*server, error) {
	public, err := freePort()
	if err != nil {
		return nil, err
	}
	api, err := freePort()
	if err != nil {
		return nil, err
	}
	var argv, env []string
	switch name {
	case serverSiobridge:
		argv = []string{cfg.siobridgeBin}
		env = []string{
			"GOMAXPROCS=1",
			"SIOBRIDGE_SERVER_LISTEN=" + public,
			"SIOBRIDGE_API_LISTEN=" + api,
			"SIOBRIDGE_WEBHOOK_URL=" + hookURL,
			"SIOBRIDGE_LOG_LEVEL=warn",
		}
		env = append(env, cfg.siobridgeEnv...)
	case serverReference:
		argv = []string{"node", cfg.referenceJS}
		_, port, _ := net.SplitHostPort(public)
		_, apiPort, _ := net.SplitHostPort(api)
		env = []string{"PORT=" + port, "API_PORT=" + apiPort, "WEBHOOK_URL=" + hookURL, "HOST=127.0.0.1"}
	default:
		return nil, fmt.Errorf("unknown server %q", name)
	}
	if cfg.cpu != "" {
		argv = append([]string{"taskset", "-c", cfg.cpu}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), env...)
	s := &server{name: name, cmd: cmd, public: public, api: api, log: &tailBuffer{max: 16 << 10}, exited: make(chan struct{})}
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s.pid = cmd.Process.Pid // taskset execs the server: same pid
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s did not get ready: %w\n%s", name, err, s.log.String())
	}
	return s, nil
}

// cleanEnv is the environment without SIOBRIDGE_* and GOMAXPROCS, so only what siobench sets
// reaches the servers.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SIOBRIDGE_") || strings.HasPrefix(kv, "GOMAXPROCS=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (s *server) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return errors.New("the process exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get("http://" + s.api + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no 200 from /healthz within %s", timeout)
}

// stop ends the server with SIGTERM (SIGKILL after 20 s) and waits for it.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// alive reports whether the process is still running.
func (s *server) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// rssBytes is the process's resident set (VmRSS of /proc/<pid>/status).
func (s *server) rssBytes() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "123456 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", s.pid)
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every Linux
// this runs on (x86-64 and arm64 fix it at 100).
const clockTicks = 100

// cpuSeconds is the CPU time the process has used, user plus system, from /proc/<pid>/stat.
func (s *server) cpuSeconds() (float64, error) { return procCPUSeconds(s.pid) }

// selfCPUSeconds is siobench's own CPU time: when it nears a whole core during a phase, the
// figures of that phase measure the generator as much as the server.
func selfCPUSeconds() float64 {
	v, _ := procCPUSeconds(os.Getpid())
	return v
}

func procCPUSeconds(pid int) (float64, error) {
	user, sys, err := procCPU(pid)
	return user + sys, err
}

// userCPUSecondsOr0 is the user-space part of cpuSeconds (utime), 0 when /proc cannot tell.
func (s *server) userCPUSecondsOr0() float64 {
	user, _, _ := procCPU(s.pid)
	return user
}

// procCPU is the CPU time process pid has used, user (utime) and system (stime) apart, in
// seconds, from /proc/<pid>/stat.
func procCPU(pid int) (user, sys float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces; fields after the last
	// ')' start with field 3 (state), so utime (14) and stime (15) are at 11 and 12.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return float64(utime) / clockTicks, float64(stime) / clockTicks, nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// buildSiobridge builds ./cmd/siobridge of this module into dir.
func buildSiobridge(dir string) (string, error) {
	bin := filepath.Join(dir, "siobridge")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/siobridge/siobridge/cmd/siobridge")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/siobridge: %w\n%s", err, out)
	}
	return bin, nil
}

// tailBuffer keeps the last max bytes written to it (a server's log, shown when it fails).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// cpuSecondsOr0 is cpuSeconds, 0 when /proc cannot tell (the process is gone: the scenario
// then fails on its own).
func (s *server) cpuSecondsOr0() float64 {
	v, _ := s.cpuSeconds()
	return v
}
