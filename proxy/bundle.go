package proxy

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

// clientDist holds socket.io-client's dist files when proxy/clientdist/update.sh has copied
// them in before the build; otherwise only its README.
//
//go:embed clientdist
var clientDist embed.FS

// ClientBundle returns the socket.io-client dist files built into the binary, for
// PublicOptions.Bundle, and whether they are there (socket.io.min.js is present): they are
// copied in at build time by proxy/clientdist/update.sh (`make bundle`) and not committed.
func ClientBundle() (fs.FS, bool) {
	sub, err := fs.Sub(clientDist, "clientdist")
	if err != nil {
		return nil, false
	}
	_, err = fs.Stat(sub, "socket.io.min.js")
	return sub, err == nil
}

// bundleNames are the files served under the Socket.IO path, as Node's socket.io serves them
// (the msgpack build aside: siobridge speaks the default JSON parser only).
var bundleNames = [...]string{
	"socket.io.js", "socket.io.js.map",
	"socket.io.min.js", "socket.io.min.js.map",
	"socket.io.esm.min.js", "socket.io.esm.min.js.map",
}

func isBundleName(name string) bool {
	for _, n := range bundleNames {
		if n == name {
			return true
		}
	}
	return false
}

// bundleCacheControl lets browsers and CDNs keep the bundle for an hour; the ETag makes the
// revalidation after that cheap.
const bundleCacheControl = "public, max-age=3600"

// bundleFile is one dist file, hashed and compressed once at start.
type bundleFile struct {
	contentType string
	data        []byte
	etag        string
	gz          []byte // nil when compressing does not make it smaller
	gzETag      string
}

// loadBundle reads the dist files present in fsys; a missing file is left out, any other read
// error is returned.
func loadBundle(fsys fs.FS) (map[string]*bundleFile, error) {
	files := make(map[string]*bundleFile)
	if fsys == nil {
		return files, nil
	}
	for _, name := range bundleNames {
		data, err := fs.ReadFile(fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("proxy: reading the socket.io-client bundle: %w", err)
		}
		f := &bundleFile{contentType: "application/javascript; charset=utf-8", data: data, etag: etagOf(data)}
		if strings.HasSuffix(name, ".map") {
			f.contentType = "application/json; charset=utf-8"
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(data)
		if err := zw.Close(); err == nil && buf.Len() < len(data) {
			f.gz = buf.Bytes()
			f.gzETag = strings.TrimSuffix(f.etag, `"`) + `-gzip"`
		}
		files[name] = f
	}
	return files, nil
}

// etagOf is a strong ETag from the content's SHA-256, so that a new bundle gets a new tag
// whatever its version says.
func etagOf(data []byte) string {
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// serveBundle serves one dist file; http.ServeContent answers If-None-Match (304), HEAD and
// Range from the headers set here.
func (p *public) serveBundle(w http.ResponseWriter, r *http.Request, name string) {
	f := p.bundle[name]
	if f == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusNotFound)
		_, _ = fmt.Fprintf(w, "siobridge: %s is not available: the socket.io-client bundle was not built into "+
			"this binary. Run `make bundle` (proxy/clientdist/update.sh) and rebuild siobridge.\n", name)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", bundleCacheControl)
	data, etag := f.data, f.etag
	if f.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header) {
			data, etag = f.gz, f.gzETag
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// acceptsGzip reports whether Accept-Encoding allows gzip: listed, or covered by "*", with a
// weight above zero.
func acceptsGzip(h http.Header) bool {
	gz, star := -1, -1 // -1: not listed, 0: refused (q=0), 1: accepted
	for _, v := range h.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			ok := 1
			if q, found := strings.CutPrefix(strings.ReplaceAll(strings.TrimSpace(params), " ", ""), "q="); found {
				if strings.Trim(q, "0.") == "" {
					ok = 0
				}
			}
			switch coding = strings.TrimSpace(coding); {
			case strings.EqualFold(coding, "gzip"):
				gz = ok
			case coding == "*":
				star = ok
			}
		}
	}
	if gz >= 0 {
		return gz == 1
	}
	return star == 1
}
