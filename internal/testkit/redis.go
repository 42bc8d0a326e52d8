package testkit

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server of the test's own: on a free loopback port, in a directory of its
// own, without persistence.
type Redis struct {
	bin  string
	dir  string
	args []string // beyond the port, address and persistence
	port int
	proc *Process // the running server; nil after Kill
	logs []*Process
}

// StartRedis runs Debian's redis-server (RequireTool) and returns once it answers PING. It is
// killed at the test's end.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t)
}

func startRedis(t testing.TB, args ...string) *Redis {
	t.Helper()
	r := &Redis{bin: RequireTool(t, "redis-server"), dir: t.TempDir(), args: args}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	t.Cleanup(func() {
		r.Kill(t)
		if t.Failed() {
			for _, p := range r.logs {
				t.Logf("%s %s", p.Name(), p.Output())
			}
		}
	})
	r.start(t)
	return r
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// URL is the server's redis:// URL, database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Kill ends the server at once (SIGKILL, as a crash) and waits for it to be gone; it does
// nothing when the server is not running.
func (r *Redis) Kill(t testing.TB) {
	t.Helper()
	if r.proc != nil {
		r.proc.Kill(t)
		r.proc = nil
	}
}

// Restart starts the server again on the same port, empty, and returns once it answers PING.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Kill(t)
	r.start(t)
}

func (r *Redis) start(t testing.TB) {
	t.Helper()
	p := launch(t, Command{
		Name: fmt.Sprintf("redis-server (start %d)", len(r.logs)+1),
		Args: append([]string{r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", r.dir}, r.args...),
		Stop: syscall.SIGKILL,
	})
	r.proc = p
	r.logs = append(r.logs, p)
	Poll(t, Wait, "redis-server on "+r.Addr()+" to answer PING", func() bool {
		select {
		case <-p.Exited():
			t.Fatalf("redis-server exited: %v\n%s", p.Err(), p.Output())
		default:
		}
		return r.ping() == nil
	})
}

// ping sends PING on a connection of its own.
func (r *Redis) ping() error {
	conn, err := net.DialTimeout("tcp", r.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
