package jsonw

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

// placeholders is a Binary that writes each []byte as Socket.IO's placeholder for it.
func placeholders(n *int) Binary {
	return func(dst, _ []byte) []byte {
		dst = append(dst, `{"_placeholder":true,"num":`...)
		dst = strconv.AppendInt(dst, int64(*n), 10)
		*n++
		return append(dst, '}')
	}
}

func TestAppend(t *testing.T) {
	type point struct {
		S string  `json:"s"`
		F float64 `json:"f"`
		B []byte  `json:"b"`
	}
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"scalars", []any{nil, true, false, 1, int8(-2), int16(3), int32(-4), int64(5), uint(6), uint8(7), uint16(8), uint32(9), uint64(math.MaxUint64)},
			`[null,true,false,1,-2,3,-4,5,6,7,8,9,18446744073709551615]`},
		{"floats", []any{1.5, 0.0, -2.0, 1e21, 1e20, 1e-7, 0.000001, 1.5e-300, 5e-324, float32(0.1), float32(1e-7), float32(3.4e38)},
			`[1.5,0,-2,1e+21,100000000000000000000,1e-7,0.000001,1.5e-300,5e-324,0.1,1e-7,3.4e+38]`},
		{"negative zero as encoding/json", []any{math.Copysign(0, -1), float32(math.Copysign(0, -1))}, `[-0,-0]`},
		{"non-finite as JSON.stringify", []any{math.NaN(), math.Inf(1), math.Inf(-1), float32(math.Inf(1)), map[string]any{"n": math.NaN()}},
			`[null,null,null,null,{"n":null}]`},
		{"escapes", "q\"b\\s/\b\f\n\r\t\x00\x01\x1f\x7f", `"q\"b\\s/\b\f\n\r\t\u0000\u0001\u001f` + "\x7f" + `"`},
		{"no HTML escaping", "<a href='x'>&</a>", `"<a href='x'>&</a>"`},
		{"line terminators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"invalid UTF-8", "a\xffb\xe2\x80c\xed\xa0\x80", `"a\ufffdb\ufffd\ufffdc\ufffd\ufffd\ufffd"`},
		{"unicode as is", "é😀\u00a0", `"é😀` + "\u00a0" + `"`},
		{"sorted keys", map[string]any{"b": 1, "a": []any{}, "": map[string]any{}, "\xff": 2}, `{"":{},"a":[],"b":1,"\ufffd":2}`},
		{"nil containers", []any{[]any(nil), map[string]any(nil), json.RawMessage(nil)}, `[null,null,null]`},
		{"raw as it is", json.RawMessage(" {\"a\" : [1, \"<\u2028>\"] }\n"), " {\"a\" : [1, \"<\u2028>\"] }\n"},
		{"numbers", []any{json.Number("12345678901234567890"), json.Number("-1.5e-3"), json.Number("")}, `[12345678901234567890,-1.5e-3,0]`},
		{"bytes as encoding/json", []any{[]byte{1, 2}, []byte(nil)}, `["AQI=",null]`},
		{"struct through encoding/json", point{S: "<&>", F: 1e-7, B: []byte{1}}, `{"s":"<&>","f":1e-7,"b":"AQ=="}`},
		{"typed containers through encoding/json", []any{[]string{"a"}, map[string]int{"b": 1}}, `[["a"],{"b":1}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Append([]byte("prefix:"), tc.v, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := "prefix:" + tc.want; string(got) != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestAppendBinary(t *testing.T) {
	var n int
	v := []any{"up", []byte{1}, map[string]any{"z": []byte(nil), "a": []any{[]byte{2}}}, struct{ B []byte }{[]byte{3}}}
	got, err := Append(nil, v, placeholders(&n))
	if err != nil {
		t.Fatal(err)
	}
	// Keys are walked in order, so "a" comes before "z"; inside a struct, encoding/json writes.
	want := `["up",{"_placeholder":true,"num":0},{"a":[{"_placeholder":true,"num":1}],"z":{"_placeholder":true,"num":2}},{"B":"Aw=="}]`
	if string(got) != want || n != 3 {
		t.Errorf("got %s (%d attachments)\nwant %s", got, n, want)
	}
}

func TestAppendErrors(t *testing.T) {
	cyclic := []any{nil}
	cyclic[0] = cyclic
	cyclicMap := map[string]any{}
	cyclicMap["self"] = cyclicMap
	for name, v := range map[string]any{
		"bad raw":             json.RawMessage(`{`),
		"empty raw":           json.RawMessage{},
		"bad number":          json.Number("1x"),
		"number with spaces":  json.Number(" 1"),
		"channel":             make(chan int),
		"NaN in a struct":     struct{ F float64 }{math.NaN()},
		"cyclic":              cyclic,
		"cyclic map":          cyclicMap,
		"too deep":            nest(MaxDepth + 1),
		"bad raw in an array": []any{1, json.RawMessage(`[1,]`)},
	} {
		if got, err := Append(nil, v, nil); err == nil {
			t.Errorf("%s: got %.40s, want an error", name, got)
		}
	}
	// As deep as encoding/json decodes is fine.
	got, err := Append(nil, nest(MaxDepth), nil)
	if want := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth); err != nil || string(got) != want {
		t.Errorf("MaxDepth arrays: %v", err)
	}
}

// nest returns depth arrays, each in the next.
func nest(depth int) any {
	v := []any{}
	for range depth - 1 {
		v = []any{v}
	}
	return v
}

// AppendString agrees with encoding/json on every rune and on every byte alone.
func TestAppendStringEveryRune(t *testing.T) {
	var s strings.Builder
	for r := rune(0); r <= 0x10ffff; r++ {
		s.WriteRune(r)
	}
	for c := 0x80; c <= 0xff; c++ {
		s.WriteByte(byte(c))
		s.WriteByte('a')
	}
	got := AppendString(nil, s.String())
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s.String()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
		t.Fatal("AppendString differs from encoding/json")
	}
}

func BenchmarkAppendString(b *testing.B) {
	for _, bc := range []struct{ name, s string }{
		{"ascii", "hello there, how are you? a plain sentence of some length"},
		{"escapes", "line one\nline \"two\"\tand\\a\x01control"},
		{"unicode", "héllo wörld, ça va? 😀 日本語のテキスト"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.SetBytes(int64(len(bc.s)))
			for b.Loop() {
				buf = AppendString(buf[:0], bc.s)
			}
		})
	}
}

func TestAppendArray(t *testing.T) {
	for _, tc := range []struct {
		a    []any
		want string
	}{
		{nil, `[]`},
		{[]any{}, `[]`},
		{[]any{"a", []byte{1}, nil}, `["a",{"_placeholder":true,"num":0},null]`},
	} {
		var n int
		got, err := AppendArray(nil, tc.a, placeholders(&n))
		if err != nil || string(got) != tc.want {
			t.Errorf("AppendArray(%#v) = %s, %v; want %s", tc.a, got, err, tc.want)
		}
	}
	if _, err := AppendArray(nil, []any{nest(MaxDepth)}, nil); err == nil {
		t.Error("AppendArray of MaxDepth arrays in one: no error")
	}
}
