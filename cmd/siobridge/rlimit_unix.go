//go:build unix

package main

import "syscall"

// openFileLimit is the process's limit on open descriptors (RLIMIT_NOFILE; Go raises its
// soft limit to the hard one at start), or 0 when there is none.
func openFileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == ^uint64(0) || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}
