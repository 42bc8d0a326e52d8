// Package group tracks goroutines so that their owner can wait for them to end: every
// goroutine siobridge starts is started through a Group of the value that owns it, whose
// Close (or stop) ends them and then waits.
//
// It does not stop goroutines itself: their owner ends them (a context, a closed channel) and
// then waits.
package group
