//go:build !unix

package main

// raiseFileLimit: a system without RLIMIT_NOFILE sets no per-process count of descriptors to
// plan with, so none is assumed; the connections fail with their own error if the system runs
// out.
func raiseFileLimit() (int, error) {
	return 1 << 20, nil
}
