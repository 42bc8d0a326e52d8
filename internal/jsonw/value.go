package jsonw

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// MaxDepth is how deep arrays and objects may nest: encoding/json's limit when it decodes, so
// that whatever it decoded can be written again. Deeper, and cyclic, values are an error.
const MaxDepth = 10000

var errDepth = fmt.Errorf("value nested deeper than %d (or cyclic)", MaxDepth)

// Binary appends b, a []byte met in the value being written, to dst.
type Binary func(dst, b []byte) []byte

// Append appends v as JSON to dst (see the package comment for what is written), each []byte
// in v through bin when bin is not nil. On error, it returns nil and the error.
func Append(dst []byte, v any, bin Binary) ([]byte, error) {
	return appendValue(dst, v, bin, 0)
}

// AppendArray appends a as a JSON array, [] when it is nil, each []byte in it through bin
// when bin is not nil. It is Append without the interface, which would cost an allocation.
func AppendArray(dst []byte, a []any, bin Binary) ([]byte, error) {
	return appendArray(dst, a, bin, 1)
}

// depth is the number of arrays and objects around v.
func appendValue(dst []byte, v any, bin Binary, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return AppendString(dst, x), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case float64:
		return AppendFloat(dst, x, 64), nil
	case float32:
		return AppendFloat(dst, float64(x), 32), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case []any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return appendArray(dst, x, bin, depth+1)
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return appendObject(dst, x, bin, depth+1)
	case json.RawMessage:
		return AppendRaw(dst, x)
	case json.Number:
		return AppendNumber(dst, x)
	case []byte:
		if bin != nil {
			return bin(dst, x), nil
		}
	}
	return appendMarshal(dst, v)
}

func appendArray(dst []byte, a []any, bin Binary, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return nil, errDepth
	}
	dst = append(dst, '[')
	for i, v := range a {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendValue(dst, v, bin, depth); err != nil {
			return nil, err
		}
	}
	return append(dst, ']'), nil
}

func appendObject(dst []byte, m map[string]any, bin Binary, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return nil, errDepth
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, k)
		dst = append(dst, ':')
		var err error
		if dst, err = appendValue(dst, m[k], bin, depth); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// AppendRaw appends raw as it is: null when nil, an error when it is not valid JSON. Unlike
// encoding/json, it does not compact raw (see the package comment).
func AppendRaw(dst []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(dst, "null"...), nil
	}
	if !json.Valid(raw) {
		// json.Compact finds the same error as json.Valid, and says where it is.
		err := json.Compact(new(bytes.Buffer), raw)
		return nil, fmt.Errorf("invalid json.RawMessage: %w", err)
	}
	return append(dst, raw...), nil
}

// appendMarshal appends v as encoding/json writes it, without HTML escaping.
func appendMarshal(dst []byte, v any) ([]byte, error) {
	b := bytes.NewBuffer(dst)
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := b.Bytes()
	return out[:len(out)-1], nil // without the newline Encode ends with
}
