package testkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildWait bounds one go build.
const buildWait = 5 * time.Minute

// Binary is a command of this module, built by the first test that needs it and then shared by
// every test of the test binary, with -race when the tests are built with it (a race in the
// child then fails the test that ran it: see Command.CheckExit). The package's TestMain runs
// the tests through Run, which removes it at the end:
//
//	var siobridge testkit.Binary
//
//	func TestMain(m *testing.M) { os.Exit(siobridge.Run(m)) }
type Binary struct {
	// Package is the command's import path; "" is cmd/siobridge.
	Package string

	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds the command the first time and returns its path; a failed build fails every
// test that asks.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(b.build)
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func (b *Binary) build() {
	pkg := b.Package
	if pkg == "" {
		pkg = modulePath + "/cmd/siobridge"
	}
	goTool, err := LookTool("go")
	if err != nil {
		b.err = err
		return
	}
	if b.dir, err = os.MkdirTemp("", "siobridge-test-"); err != nil {
		b.err = err
		return
	}
	path := filepath.Join(b.dir, filepath.Base(pkg))
	args := []string{"build", "-o", path}
	if raceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), buildWait)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goTool, args...).CombinedOutput(); err != nil {
		b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		return
	}
	b.path = path
}

// Run runs the tests, removes what Path built, and returns the exit status for os.Exit.
func (b *Binary) Run(m *testing.M) int {
	code := m.Run()
	b.Remove()
	return code
}

// Remove deletes what Path built.
func (b *Binary) Remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
