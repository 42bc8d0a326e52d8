package httpstat

import "net/http"

// Writer remembers the status code written. It unwraps to the writer beneath, so that
// http.ResponseController finds Flush and Hijack there.
type Writer struct {
	http.ResponseWriter
	// Code is the status written, 0 until one is.
	Code int
}

// WriteHeader records the first final status, then writes it.
func (w *Writer) WriteHeader(code int) {
	if w.Code == 0 && code >= 200 {
		w.Code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records 200 when nothing was written before, then writes b.
func (w *Writer) Write(b []byte) (int, error) {
	if w.Code == 0 {
		w.Code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap is for http.ResponseController.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status is the status answered: 200 when the handler wrote nothing.
func (w *Writer) Status() int {
	if w.Code == 0 {
		return http.StatusOK
	}
	return w.Code
}
