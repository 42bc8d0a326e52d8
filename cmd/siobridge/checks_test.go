package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestCheckSpoolDir(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir string
		err       string // "" when the directory will do
	}{
		{"no spool", "", ""},
		{"existing", tmp, ""},
		{"to be made", filepath.Join(tmp, "a", "b", "spool"), ""},
		{"a file", file, `config: webhook.spool_dir: "` + file + `": ` + file + " is not a directory"},
		{"under a file", filepath.Join(file, "spool"), `config: webhook.spool_dir: "` + filepath.Join(file, "spool") + `": ` + file + " is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkSpoolDir(tt.dir)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("checkSpoolDir(%q) = %v, want nil", tt.dir, err)
			case tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err)):
				t.Fatalf("checkSpoolDir(%q) = %v, want an error starting %q", tt.dir, err, tt.err)
			}
		})
	}
	// The check leaves nothing behind: no directory made, no probe file.
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "file" {
		t.Errorf("after the checks %s holds %v, want only the test's file", tmp, entries)
	}
}

func TestCheckSpoolDirNotWritable(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root writes to any directory")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	for _, d := range []string{dir, filepath.Join(dir, "spool")} {
		if err := checkSpoolDir(d); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("checkSpoolDir(%q) = %v, want permission denied", d, err)
		}
	}
}

func TestConfigFile(t *testing.T) {
	present := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(present, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "config.toml")
	tests := []struct {
		name      string
		flag      string
		flagSet   bool
		env       []string
		def, want string
	}{
		{"flag", "a.toml", true, []string{"SIOBRIDGE_CONFIG=b.toml"}, present, "a.toml"},
		{"flag empty: none", "", true, []string{"SIOBRIDGE_CONFIG=b.toml"}, present, ""},
		{"env", "", false, []string{"SIOBRIDGE_CONFIG=b.toml"}, present, "b.toml"},
		{"env empty: none", "", false, []string{"SIOBRIDGE_CONFIG="}, present, ""},
		{"default present", "", false, nil, present, present},
		{"default missing", "", false, []string{"PATH=/bin"}, missing, ""},
	}
	for _, tt := range tests {
		if got := configFile(tt.flag, tt.flagSet, tt.env, tt.def); got != tt.want {
			t.Errorf("%s: configFile = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// runCmd runs the command in this process as main does, with env alone (no config file).
func runCmd(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	var stderr bytes.Buffer
	err := run(context.Background(), args, append([]string{"SIOBRIDGE_CONFIG="}, env...), &stderr, nil)
	return stderr.String(), err
}

func TestRunHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		out, err := runCmd(t, nil, arg)
		if err != nil {
			t.Errorf("%s: %v, want no error", arg, err)
		}
		for _, want := range []string{"usage: siobridge", "-config", "-check", "-healthcheck", "SIOBRIDGE_"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s printed %q, without %q", arg, out, want)
			}
		}
	}
	if _, err := runCmd(t, nil, "-nope"); err == nil {
		t.Error("an unknown flag is no error")
	}
}

func TestRunCheckWarnsAndFails(t *testing.T) {
	hook := "SIOBRIDGE_WEBHOOK_URL=http://127.0.0.1:3000/hook"
	t.Run("warnings", func(t *testing.T) {
		out, err := runCmd(t, []string{"SIOBRIDGE_BIN=/usr/local/bin/siobridge", "SIOBRIDGE_WEBHOOK_TIMOUT=5s", "SIOBRIDGE_WEBHOOK_SECRET=s3cret"}, "-check")
		if err != nil {
			t.Fatalf("-check: %v, want no error (warnings only)", err)
		}
		for _, want := range []string{
			`level=WARN msg="config: SIOBRIDGE_BIN: unknown setting, ignored`,
			`level=WARN msg="config: SIOBRIDGE_WEBHOOK_TIMOUT: unknown setting, ignored: did you mean \"SIOBRIDGE_WEBHOOK_TIMEOUT\"?"`,
			`level=WARN msg="config: webhook.secret: is set but webhook.url is not`,
			"siobridge: configuration ok",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("-check printed:\n%s\nwithout %q", out, want)
			}
		}
	})
	t.Run("spool not writable", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		env := []string{hook, "SIOBRIDGE_WEBHOOK_SPOOL_DIR=" + filepath.Join(file, "spool")}
		// -check, and a start, which stops before opening a listener.
		for _, args := range [][]string{{"-check"}, nil} {
			out, err := runCmd(t, env, args...)
			if err == nil || !strings.HasPrefix(err.Error(), "config: webhook.spool_dir: ") || !strings.Contains(err.Error(), "is not a directory") {
				t.Errorf("%q: error %v, want one naming webhook.spool_dir", args, err)
			}
			if strings.Contains(out, "configuration ok") || strings.Contains(out, "serving") {
				t.Errorf("%q went on after the spool check:\n%s", args, out)
			}
		}
	})
}

// A listener that cannot be opened stops siobridge with an error naming the setting, and
// leaves nothing running: the webhook workers already started end too.
func TestRunListenFailureLeavesNothingRunning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	hook, err := net.Listen("tcp", "127.0.0.1:0") // the app: never answered, never reached
	if err != nil {
		t.Fatal(err)
	}
	defer hook.Close()
	_, err = runCmd(t, []string{
		"SIOBRIDGE_SERVER_LISTEN=127.0.0.1:0",
		"SIOBRIDGE_API_LISTEN=" + taken.Addr().String(),
		"SIOBRIDGE_WEBHOOK_URL=http://" + hook.Addr().String() + "/hook",
	})
	if err == nil || !strings.Contains(err.Error(), "api.listen") {
		t.Fatalf("run = %v, want an api.listen error", err)
	}
}
