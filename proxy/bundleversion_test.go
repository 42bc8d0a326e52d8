package proxy

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// bundleLock pins the socket.io-client whose dist files clientdist/update.sh copies in.
const bundleLock = "proxy/clientdist-npm/package-lock.json"

// legacyAliases are the npm aliases under which a lock file may pin another socket.io-client
// on purpose, with the major version each must have: the legacy-client tests drive
// socket.io-client 2.x (Engine.IO v3) beside the bundle's version. An alias is the marker: the
// entries installed as socket.io-client itself must still be the bundle's.
var legacyAliases = map[string]string{
	"socket.io-client-v2": "2",
}

// lockedPackage is a package as a package-lock.json (lockfileVersion 2 or 3) pins it.
type lockedPackage struct {
	// Name is the package's own name when it is installed under an alias ("npm:pkg@version").
	Name      string `json:"name"`
	Version   string `json:"version"`
	Integrity string `json:"integrity"`
}

// lockedClients returns the socket.io-client entries of the lock file at path (root-relative),
// by their place in node_modules: those installed as socket.io-client, and those of the
// package socket.io-client installed under an alias.
func lockedClients(t *testing.T, root, path string) map[string]lockedPackage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]lockedPackage `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if lock.Packages == nil {
		t.Fatalf("%s has no \"packages\": write it with npm 7 or later (lockfileVersion 2 or 3)", path)
	}
	clients := map[string]lockedPackage{}
	for place, p := range lock.Packages {
		if installedAs(place) == "socket.io-client" || p.Name == "socket.io-client" {
			clients[place] = p
		}
	}
	return clients
}

// installedAs is the name a package is installed under at place ("node_modules/a/node_modules/@s/b"
// is "@s/b"), which is its alias when it has one.
func installedAs(place string) string {
	i := strings.LastIndex(place, "node_modules/")
	if i < 0 {
		return ""
	}
	return place[i+len("node_modules/"):]
}

// The interop tests drive the socket.io-client that siobridge serves: every lock file in the
// repository that pins socket.io-client pins the bundle's version, from the same tarball.
func TestClientBundleVersionMatchesFixtures(t *testing.T) {
	root := ".." // the module's
	bundle := lockedClients(t, root, bundleLock)["node_modules/socket.io-client"]
	if bundle.Version == "" || bundle.Integrity == "" {
		t.Fatalf("%s pins no socket.io-client (with a version and an integrity)", bundleLock)
	}
	var fixtures, legacy []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (d.Name() == "node_modules" || d.Name() == "bin" || strings.HasPrefix(d.Name(), ".")) {
			return fs.SkipDir
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || d.Name() != "package-lock.json" || filepath.ToSlash(rel) == bundleLock {
			return err
		}
		clients := lockedClients(t, root, rel)
		if len(clients) > 0 {
			fixtures = append(fixtures, filepath.ToSlash(rel))
		}
		for place, p := range clients {
			alias := installedAs(place)
			if major, ok := legacyAliases[alias]; ok {
				// A deliberate other version: the legacy-client tests' socket.io-client.
				if p.Name != "socket.io-client" || !strings.HasPrefix(p.Version, major+".") || p.Integrity == "" {
					t.Errorf("%s pins %s as %s %s (%q): the alias %s is for socket.io-client %s.x, with an integrity",
						rel, place, p.Name, p.Version, p.Integrity, alias, major)
				}
				legacy = append(legacy, filepath.ToSlash(rel)+": "+alias+" "+p.Version)
				continue
			}
			if alias != "socket.io-client" {
				t.Errorf("%s installs socket.io-client %s under the alias %s, which is none of the known legacy aliases %v: "+
					"pin the bundle's version as socket.io-client, or add the alias to legacyAliases", rel, p.Version, alias, legacyAliases)
				continue
			}
			if p != bundle {
				t.Errorf("%s pins %s %s (%s), but the bundle siobridge serves is %s (%s, %s): pin the same version in both",
					rel, place, p.Version, p.Integrity, bundle.Version, bundle.Integrity, bundleLock)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk found the interop tests' lock file at least.
	if !slices.Contains(fixtures, "socketio/testdata/interop/package-lock.json") {
		t.Fatalf("the lock files with socket.io-client are %v; socketio/testdata/interop/package-lock.json is not among them", fixtures)
	}
	// And the legacy-client tests' 2.x beside it.
	if !slices.ContainsFunc(legacy, func(s string) bool { return strings.HasPrefix(s, "socketio/testdata/interop/package-lock.json: ") }) {
		t.Fatalf("socketio/testdata/interop/package-lock.json pins no socket.io-client-v2 (npm:socket.io-client@2.x); legacy pins: %v", legacy)
	}
	t.Logf("socket.io-client %s in %s and %v; legacy: %v", bundle.Version, bundleLock, fixtures, legacy)
}
