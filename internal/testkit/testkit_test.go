package testkit

import (
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeT is a test for a helper to fail: it records what the helper reports. Fatal ends the
// goroutine, as testing's does; run gives the helper one of its own.
type fakeT struct {
	testing.TB // the real test, for what fakeT does not record (TempDir, Name)

	mu       sync.Mutex
	fatal    string
	errors   []string
	logs     []string
	cleanups []func()
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatal(args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeT) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *fakeT) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

func (f *fakeT) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal != "" || len(f.errors) > 0
}

func (f *fakeT) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// run runs body as the fake test's body, on a goroutine of its own, then its cleanups, last
// first.
func (f *fakeT) run(body func(t testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.cleanups[i]()
		}()
		<-done
	}
}

// TestRequireToolSaysWhatToInstall: without the program, the test fails with one line that
// names the Debian package (or, for Go, where to get it).
func TestRequireToolSaysWhatToInstall(t *testing.T) {
	want := map[string]string{
		"go":           "go not found: install Go from https://go.dev/dl/ into /usr/local/go (Debian's golang is older than go.mod's)",
		"node":         "node not found: apt-get install nodejs",
		"npm":          "npm not found: apt-get install npm",
		"redis-server": "redis-server not found: apt-get install redis-server",
		"redis-cli":    "redis-cli not found: apt-get install redis-tools",
		"nginx":        "nginx not found: apt-get install nginx",
		"chromium":     "chromium not found: apt-get install chromium",
		"python3":      "python3 not found: apt-get install python3",
	}
	if len(want) != len(tools) {
		t.Errorf("the test knows %d tools, RequireTool %d", len(want), len(tools))
	}
	t.Setenv("PATH", t.TempDir())
	for name, msg := range want {
		tl, ok := tools[name]
		if !ok {
			t.Errorf("RequireTool does not know %s", name)
			continue
		}
		// Where Debian puts it, this machine may have it: the test looks elsewhere.
		tl.paths = []string{filepath.Join(t.TempDir(), name)}
		if _, err := tl.look(name); err == nil || err.Error() != msg {
			t.Errorf("%s missing: %v, want %q", name, err, msg)
		}
	}

	// node has no Debian path of its own to fall back on: with PATH empty, RequireTool fails
	// the test as it would on a machine without Node.js.
	f := &fakeT{TB: t}
	f.run(func(t testing.TB) {
		RequireTool(t, "node")
		t.Errorf("RequireTool returned")
	})
	if f.fatal != want["node"] || len(f.errors) > 0 {
		t.Errorf("RequireTool(node) with PATH empty: fatal %q, errors %q; want fatal %q", f.fatal, f.errors, want["node"])
	}
}

// TestRequireNodeModulesSaysWhatToRun: a fixture without its node_modules fails the test with
// the npm command that installs them, run from the repository's root.
func TestRequireNodeModulesSaysWhatToRun(t *testing.T) {
	f := &fakeT{TB: t}
	f.run(func(t testing.TB) { RequireNodeModules(t, "internal/testkit", "socket.io-client") })
	want := "socket.io-client not found in internal/testkit/node_modules: npm ci --prefix internal/testkit"
	if f.fatal != want {
		t.Errorf("fatal %q, want %q", f.fatal, want)
	}
}

// TestRequirePythonNamesTheModule: Debian's python3 without a module fails the test with one
// line naming the module.
func TestRequirePythonNamesTheModule(t *testing.T) {
	RequireTool(t, "python3")
	f := &fakeT{TB: t}
	f.run(func(t testing.TB) { RequirePython(t, "json", "siobridge_no_such_module") })
	if !strings.HasPrefix(f.fatal, "python3 module siobridge_no_such_module not found: ") || strings.Contains(f.fatal, "\n") {
		t.Errorf("fatal %q, want one line naming siobridge_no_such_module", f.fatal)
	}
}

// TestProcessExitChecked: a process that must exit 0 and does not fails the test, and the
// test's log shows what it wrote.
func TestProcessExitChecked(t *testing.T) {
	f := &fakeT{TB: t}
	f.run(func(t testing.TB) {
		p := Start(t, Command{Name: "failing", Args: []string{"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"}, CheckExit: true})
		p.Stdout.Match(t, regexp.MustCompile(`^to-stdout$`), "its line")
		<-p.Exited()
	})
	if f.fatal != "" || len(f.errors) != 1 || f.errors[0] != "failing: exit status 3" {
		t.Errorf("fatal %q, errors %q; want one error: failing: exit status 3", f.fatal, f.errors)
	}
	if log := strings.Join(f.logs, "\n"); !strings.Contains(log, "to-stdout") || !strings.Contains(log, "to-stderr") {
		t.Errorf("the log does not show the output: %q", log)
	}
}

// TestProcessStdin: a process with a stdin gets JSON lines, is read line by line by Take in
// any order, and stops when its stdin closes at the test's end.
func TestProcessStdin(t *testing.T) {
	f := &fakeT{TB: t}
	var p *Process
	f.run(func(t testing.TB) {
		p = Start(t, Command{Args: []string{"/bin/cat"}, Stdin: true, CheckExit: true})
		for i := range 3 {
			p.SendJSON(t, map[string]int{"n": i})
		}
		type msg struct{ N int }
		for _, n := range []int{2, 0, 1} {
			if m := TakeJSON(t, p.Stdout, fmt.Sprint("line ", n), func(m msg) bool { return m.N == n }); m.N != n {
				t.Errorf("took %v, want %d", m, n)
			}
		}
	})
	if f.fatal != "" || len(f.errors) > 0 {
		t.Errorf("fatal %q, errors %q", f.fatal, f.errors)
	}
	select {
	case <-p.Exited():
	default:
		t.Error("cat still running after the cleanup")
	}
}

// TestLinesEnd: a wait on the output of a process that exits without the line ends at once,
// saying so.
func TestLinesEnd(t *testing.T) {
	f := &fakeT{TB: t}
	f.run(func(t testing.TB) {
		p := Start(t, Command{Name: "quiet", Args: []string{"/bin/sh", "-c", "echo partial line without a newline | tr -d '\\n'"}})
		p.Stdout.Match(t, regexp.MustCompile(`never`), "a line that never comes")
	})
	if want := "waiting for a line that never comes: quiet exited"; f.fatal != want {
		t.Errorf("fatal %q, want %q", f.fatal, want)
	}
}

// TestProblems: what other goroutines add fails the test at its end, each with the prefix.
func TestProblems(t *testing.T) {
	f := &fakeT{TB: t}
	f.run(func(t testing.TB) {
		p := NewProblems(t, "app")
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { p.Add("webhook %d refused", i) })
		}
		wg.Wait()
	})
	slices.Sort(f.errors)
	if want := []string{"app: webhook 0 refused", "app: webhook 1 refused"}; !slices.Equal(f.errors, want) {
		t.Errorf("errors %q, want %q", f.errors, want)
	}
}
