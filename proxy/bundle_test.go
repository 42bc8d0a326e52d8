package proxy

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/siobridge/siobridge/internal/testkit"
)

// bundleHint is how to put the socket.io-client bundle where the build embeds it.
const bundleHint = "the socket.io-client bundle is missing from proxy/clientdist: run `make bundle` (or `make deps`) and test again"

// The dist files are copied in at build time and not committed: this build must have them (CI
// copies them in with `make deps`), and serve them as they are on disk. The 404 a build without
// them answers is TestBundleServing's.
func TestClientBundleMatchesDisk(t *testing.T) {
	bundle, ok := ClientBundle()
	if !ok {
		t.Fatal(bundleHint)
	}
	if _, err := fs.Stat(bundle, "README.md"); err != nil {
		t.Fatalf("the committed README must always be embedded: %v", err)
	}
	ts := newPublicServer(t, PublicOptions{Bundle: bundle})
	for _, name := range bundleNames {
		onDisk, err := os.ReadFile(filepath.Join("clientdist", name))
		if err != nil {
			t.Fatalf("%v; %s", err, bundleHint)
		}
		res := testkit.Do(t, ts.Client(), "GET", ts.URL+"/socket.io/"+name, "", nil)
		if res.Status != 200 || res.Body != string(onDisk) {
			t.Errorf("embedded %s: %d, %d bytes, want the %d bytes on disk (rebuild after `make bundle`)", name, res.Status, len(res.Body), len(onDisk))
		}
	}
}
