//go:build !unix

package main

import (
	"errors"
	"time"
)

// processCPU is not available here: the floor scenario fails.
func processCPU() (user, sys time.Duration, err error) {
	return 0, 0, errors.New("getrusage is not available on this system")
}
