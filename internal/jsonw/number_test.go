package jsonw

import (
	"encoding/json"
	"testing"
)

// TestNumberEnd holds the number grammar to encoding/json's: where NumberEnd finds a whole
// number, json.Valid agrees, and where it finds none or stops early, json.Valid refuses it.
func TestNumberEnd(t *testing.T) {
	cases := []struct {
		in   string
		from int
		want int
	}{
		{"0", 0, 1},
		{"-0", 0, 2},
		{"12.5e-3,", 0, 7},
		{"[1E+9]", 1, 5},
		{"1.5.2", 0, 3},
		{"01", 0, 1},
		{"-", 0, -1},
		{"1.", 0, -1},
		{"1e", 0, -1},
		{"1e+", 0, -1},
		{".5", 0, -1},
		{"+1", 0, -1},
		{"", 0, -1},
		{"x12", 1, 3},
	}
	for _, c := range cases {
		if got := NumberEnd(c.in, c.from); got != c.want {
			t.Errorf("NumberEnd(%q, %d) = %d; want %d", c.in, c.from, got, c.want)
		}
		if got := NumberEnd([]byte(c.in), c.from); got != c.want {
			t.Errorf("NumberEnd([]byte(%q), %d) = %d; want %d", c.in, c.from, got, c.want)
		}
		whole := c.from == 0 && c.want == len(c.in)
		if c.from == 0 && whole != json.Valid([]byte(c.in)) {
			t.Errorf("%q: NumberEnd says whole number %v, json.Valid %v", c.in, whole, !whole)
		}
	}
}
