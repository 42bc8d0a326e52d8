package didyoumean

import (
	"slices"
	"testing"
)

func TestClosest(t *testing.T) {
	names := []string{"ack", "emit", "join", "leave", "disconnect", "data", "message"}
	tests := []struct {
		got  string
		want []string
	}{
		{"acks", []string{"ack"}},
		{"Emits", []string{"emit"}},
		{"jion", []string{"join"}},
		{"disconect", []string{"disconnect"}},
		{"dat", []string{"data"}},
		{"rooms", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if got := Closest(tt.got, names); !slices.Equal(got, tt.want) {
			t.Errorf("Closest(%q) = %q, want %q", tt.got, got, tt.want)
		}
	}
	if got := Closest("ab", []string{"aa", "bb", "zz"}); !slices.Equal(got, []string{"aa", "bb"}) {
		t.Errorf("ties: Closest(ab) = %q, want both at distance 1", got)
	}
}

func TestSuggest(t *testing.T) {
	if got := Suggest(nil); got != "" {
		t.Errorf("Suggest(nil) = %q", got)
	}
	if got, want := Suggest([]string{"a", "b"}), `did you mean "a" or "b"?`; got != want {
		t.Errorf("Suggest = %q, want %q", got, want)
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"args", "argz", 1}} {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
