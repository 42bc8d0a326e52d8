package httpstat

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriter(t *testing.T) {
	for _, tt := range []struct {
		name string
		h    func(w http.ResponseWriter)
		want int
	}{
		{"nothing written", func(http.ResponseWriter) {}, http.StatusOK},
		{"body only", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, http.StatusOK},
		{"status", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTeapot) }, http.StatusTeapot},
		{"informational first", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusNotFound)
		}, http.StatusNotFound},
		{"second status ignored", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusCreated)
			w.WriteHeader(http.StatusInternalServerError)
		}, http.StatusCreated},
	} {
		rec := httptest.NewRecorder()
		w := &Writer{ResponseWriter: rec}
		tt.h(w)
		if got := w.Status(); got != tt.want {
			t.Errorf("%s: Status() = %d, want %d", tt.name, got, tt.want)
		}
		if w.Unwrap() != rec {
			t.Errorf("%s: Unwrap does not give the writer beneath", tt.name)
		}
	}
}
