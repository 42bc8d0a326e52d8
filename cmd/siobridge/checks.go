package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// checkSpoolDir reports a webhook.spool_dir that siobridge could not write to, before it
// starts (and in -check), so that the problem shows as a configuration error rather than as
// webhooks refused later: the directory, or the nearest existing one above it, which
// siobridge would make it in, must be a directory in which a file can be made. The probe
// file is removed at once. An empty dir (no spool) passes.
func checkSpoolDir(dir string) error {
	if dir == "" {
		return nil
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("config: webhook.spool_dir: %q: %s: make it a directory that the user siobridge runs as can write to (uid %d), or choose another",
			dir, fmt.Sprintf(format, args...), os.Getuid())
	}
	existing := filepath.Clean(dir)
	for {
		fi, err := os.Stat(existing)
		if err == nil {
			if !fi.IsDir() {
				return fail("%s is not a directory", existing)
			}
			break
		}
		// Missing, or under a file: the file shows on the way up.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return fail("%v", unwrapPath(err))
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			return fail("%v", unwrapPath(err))
		}
		existing = parent
	}
	probe, err := os.CreateTemp(existing, ".siobridge-check-*")
	if err != nil {
		if existing != filepath.Clean(dir) {
			return fail("cannot be made in %s (%v)", existing, unwrapPath(err))
		}
		return fail("cannot be written to (%v)", unwrapPath(err))
	}
	name := probe.Name()
	probe.Close()
	if err := os.Remove(name); err != nil {
		return fail("cannot remove a file from it (%v)", unwrapPath(err))
	}
	return nil
}

// unwrapPath returns a *fs.PathError's cause alone ("permission denied"): the messages above
// name the path already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
