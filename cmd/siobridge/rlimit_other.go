//go:build !unix

package main

// openFileLimit is 0 where there is no RLIMIT_NOFILE: no limit is derived from it.
func openFileLimit() int { return 0 }
