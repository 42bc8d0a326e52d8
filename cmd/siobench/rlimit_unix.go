//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseFileLimit raises RLIMIT_NOFILE's soft limit to the hard one (the servers siobench
// starts inherit it) and returns how many clients one process can then hold, keeping some
// descriptors for listeners, webhooks and files.
func raiseFileLimit() (int, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("setrlimit NOFILE %d: %w", lim.Max, err)
	}
	return int(min(lim.Max, 1<<24)) - 500, nil
}
