package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/siobridge/siobridge/internal/testkit"
	"github.com/siobridge/siobridge/webhook"
)

// verifyHarness calls verify (defined above it) on every case read from stdin, and prints
// what each returned, or the exception it raised, as a JSON list.
const verifyHarness = `
import json, sys
out = []
for c in json.load(sys.stdin):
    try:
        out.append(repr(check(c["header"], c["body"].encode())))
    except Exception as e:
        out.append("raised %s: %s" % (type(e).__name__, e))
print(json.dumps(out))
`

// TestPythonVerify runs the Python verify() of docs/webhooks.md, as an app would copy it, and
// that of python/handler.py on good, missing and garbled signature headers: each answers True
// or False and never raises (an app whose verify raises answers 500, which siobridge retries).
func TestPythonVerify(t *testing.T) {
	python := testkit.RequireTool(t, "python3")
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "webhooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)### Verifying the signature\n.*?```python\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/webhooks.md has no ```python block under \"### Verifying the signature\"")
	}
	handlerPy, err := filepath.Abs(filepath.Join("python", "handler.py"))
	if err != nil {
		t.Fatal(err)
	}
	impls := []struct{ name, program string }{
		{"docs/webhooks.md", string(m[1]) + fmt.Sprintf("\ndef check(header, body):\n    return verify(%q.encode(), header, body)\n", secret)},
		{"python/handler.py", fmt.Sprintf("import importlib.util\nspec = importlib.util.spec_from_file_location(\"handler\", %q)\nhandler = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(handler)\ncheck = handler.verify\n", handlerPy)},
	}

	now := time.Now()
	body := `{"id":"D1","type":"connect","namespace":"/","socket":{"id":"S1","rooms":[],"data":null}}`
	good := webhook.Sign(secret, now, []byte(body))
	ts := fmt.Sprint(now.Unix())
	cases := []struct {
		name   string
		header any // a string, or nil for a missing header
		body   string
		want   string
	}{
		{"good", good, body, "True"},
		{"missing", nil, body, "False"},
		{"empty", "", body, "False"},
		{"garbled", "nonsense", body, "False"},
		{"no value", "t,v1", body, "False"},
		{"empty values", "t=,v1=", body, "False"},
		{"no v1", "t=" + ts, body, "False"},
		{"another body", good, body + " ", "False"},
		{"another secret", webhook.Sign("not-"+secret, now, []byte(body)), body, "False"},
		{"too old", webhook.Sign(secret, now.Add(-10*time.Minute), []byte(body)), body, "False"},
		{"non-ASCII signature", "t=" + ts + ",v1=é" + strings.Repeat("0", 63), body, "False"},
		{"non-ASCII digits", "t=²³,v1=00", body, "False"},
		{"timestamp too large for a float", "t=" + strings.Repeat("9", 400) + ",v1=00", body, "False"},
		{"timestamp past int's digit limit", "t=" + strings.Repeat("9", 5000) + ",v1=00", body, "False"},
	}
	input, err := json.Marshal(func() []map[string]any {
		var in []map[string]any
		for _, c := range cases {
			in = append(in, map[string]any{"header": c.header, "body": c.body})
		}
		return in
	}())
	if err != nil {
		t.Fatal(err)
	}

	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			cmd := exec.CommandContext(ctx, python, "-c", impl.program+verifyHarness)
			cmd.Env = testkit.Env("SIOBRIDGE_WEBHOOK_SECRET=" + secret)
			cmd.Stdin = strings.NewReader(string(input))
			out, err := cmd.Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("python: %v\n%s\nprogram:\n%s", err, stderr, impl.program)
			}
			var got []string
			if err := json.Unmarshal(out, &got); err != nil || len(got) != len(cases) {
				t.Fatalf("python printed %q (%v), want %d results", out, err, len(cases))
			}
			for i, c := range cases {
				if got[i] != c.want {
					t.Errorf("%s: verify returned %s, want %s", c.name, got[i], c.want)
				}
			}
		})
	}
}
