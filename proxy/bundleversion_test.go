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

// lockedPackage is a package as a package-lock.json (lockfileVersion 2 or 3) pins it.
type lockedPackage struct {
	Version   string `json:"version"`
	Integrity string `json:"integrity"`
}

// lockedClients returns the socket.io-client entries of the lock file at path (root-relative),
// by their place in node_modules.
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
		if place == "node_modules/socket.io-client" || strings.HasSuffix(place, "/node_modules/socket.io-client") {
			clients[place] = p
		}
	}
	return clients
}

// The interop tests drive the socket.io-client that siobridge serves: every lock file in the
// repository that pins socket.io-client pins the bundle's version, from the same tarball.
func TestClientBundleVersionMatchesFixtures(t *testing.T) {
	root := ".." // the module's
	bundle := lockedClients(t, root, bundleLock)["node_modules/socket.io-client"]
	if bundle.Version == "" || bundle.Integrity == "" {
		t.Fatalf("%s pins no socket.io-client (with a version and an integrity)", bundleLock)
	}
	var fixtures []string
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
	t.Logf("socket.io-client %s in %s and %v", bundle.Version, bundleLock, fixtures)
}
