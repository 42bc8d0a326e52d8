package testkit

import (
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// Siobridge is a running siobridge process.
type Siobridge struct {
	*Process
	// Public and API are the host:port of its listeners (Socket.IO and the reverse proxy; the
	// REST API), once it serves.
	Public, API string
}

// servingRE is siobridge's log line once both listeners accept.
var servingRE = regexp.MustCompile(`msg="siobridge serving".* public=(\S+) .* api=(\S+)`)

// siobridgeEnv comes before a Command's Env: no config file unless -config names one (not even
// /etc/siobridge/config.toml), both listeners on free loopback ports, and a race report as exit
// status 66 without a pause.
var siobridgeEnv = []string{
	"SIOBRIDGE_CONFIG=",
	"SIOBRIDGE_SERVER_LISTEN=127.0.0.1:0",
	"SIOBRIDGE_API_LISTEN=127.0.0.1:0",
	"GORACE=halt_on_error=0 exitcode=66 atexit_sleep_ms=0",
}

// StartSiobridge runs siobridge as c says (c.Args[0] is the binary: see Binary) and returns once
// it logs that it serves. Its environment is Env()'s, then the listeners on free loopback ports
// and no config file, then c.Env. At the test's end it gets SIGTERM, and the test fails unless
// it exits 0 (66: the race detector found a race) or the test killed it.
func StartSiobridge(t testing.TB, c Command) *Siobridge {
	t.Helper()
	s := LaunchSiobridge(t, c)
	s.AwaitServing(t)
	return s
}

// LaunchSiobridge is StartSiobridge without the wait, to start several at once; AwaitServing
// waits for each.
func LaunchSiobridge(t testing.TB, c Command) *Siobridge {
	t.Helper()
	if c.Name == "" {
		c.Name = "siobridge"
	}
	c.Env = append(append([]string(nil), siobridgeEnv...), c.Env...)
	c.CheckExit = true
	return &Siobridge{Process: Start(t, c)}
}

// AwaitServing waits until siobridge logs that it serves, and sets Public and API. The test
// fails when it exits first, or after StartWait.
func (s *Siobridge) AwaitServing(t testing.TB) {
	t.Helper()
	m := s.Stderr.match(t, StartWait, servingRE, s.Name()+" to log that it serves")
	s.Public, s.API = m[1], m[2]
}

// Log is what siobridge logged so far.
func (s *Siobridge) Log() string { return s.Stderr.String() }

// AwaitLog waits until cond holds for siobridge's log; the test fails when siobridge exits
// first, or after OutputWait.
func (s *Siobridge) AwaitLog(t testing.TB, what string, cond func(log string) bool) {
	t.Helper()
	s.Stderr.Await(t, what+" in "+s.Name()+"'s log", cond)
}

// AwaitReady polls GET /readyz until it answers status: 200 once siobridge can serve (in a
// cluster: once it is subscribed to Redis), 503 while it cannot. The test fails after within.
func (s *Siobridge) AwaitReady(t testing.TB, within time.Duration, status int) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 5 * time.Second}
	Poll(t, within, fmt.Sprintf("GET /readyz on %s to answer %d", s.Name(), status), func() bool {
		res, err := Fetch(client, http.MethodGet, "http://"+s.API+"/readyz", "", nil)
		return err == nil && res.Status == status
	})
}
