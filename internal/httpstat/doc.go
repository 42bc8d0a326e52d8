// Package httpstat records the status code an http.Handler answers with, for the metrics of
// the public front and of the API.
//
// It records; it does not export metrics or change what the handler writes.
package httpstat
