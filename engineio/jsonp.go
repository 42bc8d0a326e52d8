package engineio

import (
	"fmt"
	"net/url"
	"unicode/utf8"
)

// This file holds JSONP polling, chosen by a request's j query parameter: the browser loads
// each poll as a classic script that calls ___eio[j] with the payload as a JavaScript string,
// and sends each upload as a form POST whose d field is the payload. Nothing a client sends is
// ever written into the script but the payload inside a string literal and j, which must be
// decimal digits.

// maxJSONPIndexDigits bounds j: the index of the client's callback, a small counter.
const maxJSONPIndexDigits = 10

// validJSONPIndex reports whether j may be written into a JSONP answer: 1 to 10 ASCII digits.
func validJSONPIndex(j string) bool {
	if len(j) == 0 || len(j) > maxJSONPIndexDigits {
		return false
	}
	for i := 0; i < len(j); i++ {
		if j[i] < '0' || j[i] > '9' {
			return false
		}
	}
	return true
}

// appendJSONP appends the JSONP answer of a poll: ___eio[j]("<payload>"); with the payload
// written as a JSON string that is also a JavaScript string literal (U+2028 and U+2029
// escaped).
func appendJSONP(b []byte, j string, payload []byte) []byte {
	b = append(b, "___eio["...)
	b = append(b, j...)
	b = append(b, "]("...)
	b = appendJSString(b, payload)
	return append(b, ");"...)
}

const hexDigits = "0123456789abcdef"

// appendJSString appends s as a JSON string literal, escaped as JSON.stringify escapes it,
// and U+2028 and U+2029 too, which a JavaScript string literal may not hold before ES2019.
// Invalid UTF-8 is written as U+FFFD, byte by byte.
func appendJSString(b []byte, s []byte) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c >= 0x20:
				b = append(b, c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, "\ufffd"...)
		case r == '\u2028':
			b = append(b, `\u2028`...)
		case r == '\u2029':
			b = append(b, `\u2029`...)
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// decodeJSONPForm returns the payload of a JSONP upload: the form's one d field, with the
// newlines the client escaped un-escaped as Node's engine.io does (jsonpUnescape).
func decodeJSONPForm(body []byte) ([]byte, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: bad JSONP form: %v", ErrDecode, err)
	}
	d := form["d"]
	if len(d) != 1 {
		return nil, fmt.Errorf("%w: a JSONP form needs one d field, got %d", ErrDecode, len(d))
	}
	return jsonpUnescape([]byte(d[0])), nil
}

// jsonpUnescape undoes the client's escaping of newlines in a JSONP upload, in Node's
// engine.io's two passes: first every `\n` (backslash, n) not preceded by a backslash, left
// to right, becomes a newline, and `\\n` is kept as it is; then every `\\n` becomes `\n`. The
// client wrote a newline as `\n` and a `\n` as `\\n`. (A backslash before a newline does not
// come back as it was sent; socket.io's payloads, JSON, never hold a raw newline.)
func jsonpUnescape(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		switch {
		case i+2 < len(s) && s[i] == '\\' && s[i+1] == '\\' && s[i+2] == 'n':
			out = append(out, s[i:i+3]...)
			i += 3
		case i+1 < len(s) && s[i] == '\\' && s[i+1] == 'n':
			out = append(out, '\n')
			i += 2
		default:
			out = append(out, s[i])
			i++
		}
	}
	s, out = out, s[:0]
	for i := 0; i < len(s); {
		if i+2 < len(s) && s[i] == '\\' && s[i+1] == '\\' && s[i+2] == 'n' {
			out = append(out, '\\', 'n')
			i += 3
			continue
		}
		out = append(out, s[i])
		i++
	}
	return out
}
