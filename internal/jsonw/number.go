package jsonw

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// AppendFloat appends f, read as a float of bits bits (64 or 32), as encoding/json and
// JSON.stringify write it; NaN and ±Inf are written as null.
func AppendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 {
		if bits == 64 && (a < 1e-6 || a >= 1e21) || bits == 32 && (float32(a) < 1e-6 || float32(a) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// strconv pads a negative exponent to two digits ("1e-07"); JSON.stringify and
		// encoding/json do not ("1e-7"). Positive exponents here are at least 21.
		if n := len(dst); dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// AppendNumber appends n as encoding/json writes a json.Number: as it is when it is a JSON
// number, 0 when empty, an error otherwise.
func AppendNumber(dst []byte, n json.Number) ([]byte, error) {
	if n == "" {
		return append(dst, '0'), nil
	}
	if !validNumber(string(n)) {
		return nil, fmt.Errorf("invalid json.Number %q", string(n))
	}
	return append(dst, n...), nil
}

// validNumber reports whether s is a JSON number literal, without spaces.
func validNumber(s string) bool { return NumberEnd(s, 0) == len(s) }

// NumberEnd returns the index just past the JSON number that starts at s[i], or -1 when
// s[i:] does not start with one. It is the grammar AppendNumber checks, and the one the
// Socket.IO parser reads numbers with.
func NumberEnd[T ~string | ~[]byte](s T, i int) int {
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = skipDigits(s, i+1)
	default:
		return -1
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits[T ~string | ~[]byte](s T, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}
