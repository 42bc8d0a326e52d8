package testkit

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The tests that run real clients, Redis, nginx or a browser need what .ci/install-deps
// installs (`make deps`). Without it they fail, in CI as anywhere: a skipped interop test
// would look like a passing one. Each failure is one line that says what to install.

// tool is a program a test runs, and where Debian puts it.
type tool struct {
	install string   // what to run when it is missing
	paths   []string // tried first, in order: PATH may hold another build (a pyenv python3)
	onPath  bool     // then looked for on PATH
}

func aptGet(pkgs ...string) string { return "apt-get install " + strings.Join(pkgs, " ") }

// tools are the programs RequireTool knows. node and npm come from the machine's Node.js or,
// where there is none, from Debian's nodejs and npm (.ci/install-deps).
var tools = map[string]tool{
	"go":           {install: "install Go from https://go.dev/dl/ into /usr/local/go (Debian's golang is older than go.mod's)", paths: []string{"/usr/local/go/bin/go"}, onPath: true},
	"node":         {install: aptGet("nodejs"), onPath: true},
	"npm":          {install: aptGet("npm"), onPath: true},
	"redis-server": {install: aptGet("redis-server"), paths: []string{"/usr/bin/redis-server"}, onPath: true},
	"redis-cli":    {install: aptGet("redis-tools"), paths: []string{"/usr/bin/redis-cli"}, onPath: true},
	"nginx":        {install: aptGet("nginx"), paths: []string{"/usr/sbin/nginx"}, onPath: true},
	"chromium":     {install: aptGet("chromium"), paths: []string{"/usr/bin/chromium"}},
	"python3":      {install: aptGet("python3"), paths: []string{"/usr/bin/python3"}},
}

// LookTool returns the path of the program name: go, node, npm, redis-server, redis-cli, nginx, chromium,
// or python3 (Debian's /usr/bin/python3, whose modules RequirePython checks). Its error is one
// line that says what to install.
func LookTool(name string) (string, error) {
	tl, ok := tools[name]
	if !ok {
		return "", fmt.Errorf("testkit: no tool %q (known: %s)", name, strings.Join(slices.Sorted(maps.Keys(tools)), ", "))
	}
	return tl.look(name)
}

func (tl tool) look(name string) (string, error) {
	for _, p := range tl.paths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if tl.onPath {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: %s", name, tl.install)
}

// RequireTool is LookTool that fails the test, with one line naming the package to install,
// when the program is missing.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := LookTool(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pythonModules are the Debian packages of the modules the python tests import.
var pythonModules = map[string]string{
	"socketio":  "python3-socketio",
	"engineio":  "python3-engineio",
	"websocket": "python3-websocket",
	"requests":  "python3-requests",
}

// LookPython returns Debian's /usr/bin/python3 once it imports every one of modules (socketio,
// engineio, websocket, requests). Its error is one line that names the package to install.
func LookPython(modules ...string) (string, error) {
	py, err := LookTool("python3")
	if err != nil || len(modules) == 0 {
		return py, err
	}
	// One interpreter for all of them; one a module to tell which is missing.
	if pythonImports(py, modules...) == nil {
		return py, nil
	}
	for _, m := range modules {
		if err := pythonImports(py, m); err != nil {
			pkg, ok := pythonModules[m]
			if !ok {
				return "", fmt.Errorf("python3 module %s not found: %v", m, err)
			}
			return "", fmt.Errorf("python3 module %s not found: %s", m, aptGet(pkg))
		}
	}
	return "", fmt.Errorf("%s cannot import %s together", py, strings.Join(modules, ", "))
}

func pythonImports(py string, modules ...string) error {
	cmd := exec.Command(py, "-c", "import "+strings.Join(modules, ", "))
	cmd.Env = Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("%w: %s", err, lines[len(lines)-1])
	}
	return nil
}

// RequirePython is LookPython that fails the test, with one line naming the package to
// install, when python3 or a module is missing.
func RequirePython(t testing.TB, modules ...string) string {
	t.Helper()
	p, err := LookPython(modules...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The npm fixtures: directories with a package.json and a lock file, where `npm ci` installs
// the pinned packages the tests run.
const (
	// InteropNode pins socket.io-client (with engine.io-client and ws).
	InteropNode = "socketio/testdata/interop"
	// ClusterNode pins socket.io, @socket.io/redis-adapter, @socket.io/redis-emitter, redis
	// and socket.io-client, which cluster.js there runs.
	ClusterNode = "socketio/redisadapter/testdata/node"
)

// LookNodeModules returns the absolute path of the node_modules of dir, an npm fixture named
// from the repository's root (InteropNode, ClusterNode), once it holds every one of pkgs. Its
// error is one line with the npm command that installs them.
func LookNodeModules(dir string, pkgs ...string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	modules := filepath.Join(root, dir, "node_modules")
	for _, pkg := range pkgs {
		if _, err := os.Stat(filepath.Join(modules, pkg, "package.json")); err != nil {
			return "", fmt.Errorf("%s not found in %s/node_modules: npm ci --prefix %s", pkg, dir, dir)
		}
	}
	return modules, nil
}

// RequireNodeModules is LookNodeModules that fails the test, with the npm command to run,
// when a package is missing. It does not look for node itself: RequireTool(t, "node") does.
func RequireNodeModules(t testing.TB, dir string, pkgs ...string) string {
	t.Helper()
	p, err := LookNodeModules(dir, pkgs...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// modulePath is the module whose root Root finds.
const modulePath = "github.com/siobridge/siobridge"

// Root returns the repository's root: the nearest directory above the working directory (a
// test's is its package's) whose go.mod is this module's.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			for line := range strings.Lines(string(b)) {
				if strings.TrimSpace(line) == "module "+modulePath {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testkit: no go.mod of " + modulePath + " above the working directory")
		}
		dir = parent
	}
}

// RootDir returns the absolute path of rel, a path from the repository's root.
func RootDir(t testing.TB, rel string) string {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, rel)
}
