package proxy

import (
	"io/fs"
	"os"
	"testing"

	"github.com/siobridge/siobridge/internal/testkit"
)

// The dist files are copied in at build time and not committed: ClientBundle must say whether
// this build has them, and serve them as they are on disk when it does.
func TestClientBundleMatchesDisk(t *testing.T) {
	onDisk, statErr := os.ReadFile("clientdist/socket.io.min.js")
	bundle, ok := ClientBundle()
	if ok != (statErr == nil) {
		t.Fatalf("ClientBundle reports %v, but reading clientdist/socket.io.min.js gives %v", ok, statErr)
	}
	if _, err := fs.Stat(bundle, "README.md"); err != nil {
		t.Fatalf("the committed README must always be embedded: %v", err)
	}
	if !ok {
		t.Log("no socket.io-client bundle in clientdist/ (run proxy/clientdist/update.sh): only the 404 path is checked")
	}
	ts := newPublicServer(t, PublicOptions{Bundle: bundle})
	res := testkit.Do(t, ts.Client(), "GET", ts.URL+"/socket.io/socket.io.min.js", "", nil)
	switch {
	case ok && (res.Status != 200 || res.Body != string(onDisk)):
		t.Fatalf("embedded socket.io.min.js: %d, %d bytes, want the %d bytes on disk", res.Status, len(res.Body), len(onDisk))
	case !ok && res.Status != 404:
		t.Fatalf("without the bundle: %d", res.Status)
	}
}
