package testkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	// StartWait bounds a server's start: built with -race siobridge compresses its client
	// bundle slowly, and tests start several at once on a loaded machine.
	StartWait = 60 * time.Second
	// StopWait bounds a process's exit once it is told to stop; siobridge's shutdown grace is
	// 10s.
	StopWait = 15 * time.Second
)

// raceExit is the exit status GORACE gives siobridge when the race detector reports.
const raceExit = 66

// Command is a child process for Start.
type Command struct {
	// Name names it in messages; default the base name of Args[0].
	Name string
	// Args is the program and its arguments.
	Args []string
	// Dir is its working directory; default the test's (its package's directory).
	Dir string
	// Env is added to Env()'s environment; the last value of a variable wins.
	Env []string
	// Stdin gives it a pipe that WriteLine and SendJSON write to. Closing it is then how
	// the process is told to stop, rather than Stop.
	Stdin bool
	// Stop is the signal that tells it to stop, at the test's end or at Terminate; default
	// SIGTERM.
	Stop os.Signal
	// CheckExit fails the test unless the process exits 0 (one the test kills on purpose is
	// not checked).
	CheckExit bool
	// OnLine, when set, sees each line of stdout as it comes, in order, on the goroutine that
	// reads them; Stdout keeps them too.
	OnLine func(line string)
}

// Process is a child process that Start runs for a test. What it writes is in Stdout and
// Stderr as it comes.
type Process struct {
	Stdout, Stderr *Lines

	name      string
	cmd       *exec.Cmd
	stop      os.Signal
	checkExit bool

	stdinMu sync.Mutex
	stdin   io.WriteCloser

	stopOnce sync.Once
	killed   atomic.Bool   // by the test: its exit status is not checked
	exited   chan struct{} // closed once it has exited and its output is read
	err      error         // cmd.Wait's, once exited is closed
}

// Start runs c. At the test's end (t.Cleanup) it tells the process to stop, kills it if it has
// not exited within StopWait, checks its exit status if c.CheckExit, and shows its output if
// the test failed.
func Start(t testing.TB, c Command) *Process {
	t.Helper()
	p := launch(t, c)
	t.Cleanup(func() { p.finish(t) })
	return p
}

// launch is Start without the cleanup, for owners that stop the process themselves.
func launch(t testing.TB, c Command) *Process {
	t.Helper()
	if len(c.Args) == 0 {
		t.Fatal("testkit.Start: no program to run")
	}
	name := c.Name
	if name == "" {
		name = filepath.Base(c.Args[0])
	}
	p := &Process{
		Stdout:    &Lines{name: name, onLine: c.OnLine},
		Stderr:    &Lines{name: name},
		name:      name,
		stop:      c.Stop,
		checkExit: c.CheckExit,
		exited:    make(chan struct{}),
	}
	if p.stop == nil {
		p.stop = syscall.SIGTERM
	}
	p.cmd = exec.Command(c.Args[0], c.Args[1:]...)
	p.cmd.Dir = c.Dir
	p.cmd.Env = Env(c.Env...)
	p.cmd.Stdout, p.cmd.Stderr = p.Stdout, p.Stderr
	p.cmd.WaitDelay = 5 * time.Second // a grandchild that holds the pipes does not hold the test
	if c.Stdin {
		var err error
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait() // after the output is read to its end
		p.Stdout.end()
		p.Stderr.end()
		close(p.exited)
	}()
	return p
}

// finish is Start's cleanup.
func (p *Process) finish(t testing.TB) {
	p.Stop(t)
	if p.checkExit && !p.killed.Load() && p.err != nil {
		if p.ExitCode() == raceExit {
			t.Errorf("%s: %v: the race detector found a race (see its output)", p.name, p.err)
		} else {
			t.Errorf("%s: %v", p.name, p.err)
		}
	}
	if t.Failed() {
		t.Logf("%s %s", p.name, p.Output())
	}
}

func (p *Process) stopName() string {
	if p.stdin != nil {
		return "its stdin closing"
	}
	return p.stop.String()
}

// Name is the process's name in messages.
func (p *Process) Name() string { return p.name }

// Exited is closed once the process has exited and all it wrote is in Stdout and Stderr.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process ended, once Exited is closed: nil when it exited 0.
func (p *Process) Err() error {
	<-p.exited
	return p.err
}

// ExitCode is the process's exit status once Exited is closed; -1 when a signal ended it.
func (p *Process) ExitCode() int {
	<-p.exited
	return p.cmd.ProcessState.ExitCode()
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output is what the process wrote so far, for a message.
func (p *Process) Output() string {
	var b strings.Builder
	b.WriteString("stdout:\n")
	b.WriteString(p.Stdout.String())
	b.WriteString("\nstderr:\n")
	b.WriteString(p.Stderr.String())
	return b.String()
}

// Signal sends sig (SIGSTOP and SIGCONT, say) to the process.
func (p *Process) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v to %s: %v", sig, p.name, err)
	}
}

// Terminate tells the process to stop, once (the cleanup does not again): it closes its stdin
// when it has one, and sends its stop signal otherwise. It does not wait.
func (p *Process) Terminate(t testing.TB) {
	t.Helper()
	p.stopOnce.Do(func() {
		if p.stdin != nil {
			p.stdinMu.Lock()
			_ = p.stdin.Close()
			p.stdinMu.Unlock()
			return
		}
		if err := p.cmd.Process.Signal(p.stop); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("%v to %s: %v", p.stop, p.name, err)
		}
	})
}

// Stop is Terminate, then a wait for the exit: the process is killed, and the test fails, if
// it has not exited within StopWait. It returns the exit status (-1: a signal ended it).
func (p *Process) Stop(t testing.TB) int {
	t.Helper()
	p.Terminate(t)
	select {
	case <-p.exited:
	case <-time.After(StopWait):
		p.killed.Store(true)
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("%s did not exit within %v of %s; killed", p.name, StopWait, p.stopName())
	}
	return p.ExitCode()
}

// Wait waits up to within for the process to exit by itself, and returns how it ended (Err),
// or an error that says it is still running.
func (p *Process) Wait(within time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	case <-time.After(within):
		return fmt.Errorf("%s still running after %v", p.name, within)
	}
}

// Kill ends the process at once (SIGKILL, as a crash) and waits for it to be gone. Its exit
// status is not checked.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	p.killed.Store(true)
	p.stopOnce.Do(func() {}) // nothing more to tell it
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("SIGKILL to %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(StopWait):
		t.Fatalf("%s still running %v after SIGKILL", p.name, StopWait)
	}
}

// WriteLine writes line and a newline to the process's stdin (Command.Stdin); safe on any
// goroutine.
func (p *Process) WriteLine(t testing.TB, line string) {
	t.Helper()
	if p.stdin == nil {
		t.Fatalf("%s has no stdin: set Command.Stdin", p.name)
	}
	p.stdinMu.Lock()
	_, err := io.WriteString(p.stdin, line+"\n")
	p.stdinMu.Unlock()
	if err != nil {
		t.Fatalf("writing to %s: %v\n%s", p.name, err, p.Stderr)
	}
}

// SendJSON writes v as one JSON line to the process's stdin.
func (p *Process) SendJSON(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p.WriteLine(t, string(b))
}

// Env is the test's environment for a child process, followed by extra (the last value of a
// variable wins). It leaves out SIOBRIDGE_* settings (a stray one would change siobridge's
// configuration, and siobridge refuses unknown ones), proxy settings (everything runs on
// loopback), and what would make node or Debian's python3 load modules from elsewhere
// (NODE_OPTIONS, NODE_PATH, PYTHONPATH, PYTHONHOME) or a handler pick its port (PORT); it
// adds NO_PROXY=*, PYTHONDONTWRITEBYTECODE=1 and PYTHONIOENCODING=utf-8.
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		switch {
		case strings.HasPrefix(name, "SIOBRIDGE_"), strings.HasSuffix(upper, "_PROXY"):
			continue
		case upper == "NODE_OPTIONS", upper == "NODE_PATH", upper == "PYTHONPATH", upper == "PYTHONHOME", upper == "PORT":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "NO_PROXY=*", "no_proxy=*", "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8")
	return append(env, extra...)
}
