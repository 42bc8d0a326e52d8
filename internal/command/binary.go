package command

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/siobridge/siobridge/socketio"
)

// binaryKey marks binary values in JSON: {"$binary":"<base64>"} stands for bytes, both in what
// the app sends (REST calls, webhook replies) and in what siobridge sends it.
const binaryKey = "$binary"

// ArgsFromJSON turns JSON arguments from the app into values for socketio's emit functions:
// {"$binary":"<base64>"} objects at any depth become []byte (binary attachments on the wire),
// and arguments with none are passed through as json.RawMessage, untouched and unparsed.
func ArgsFromJSON(args []json.RawMessage) ([]any, error) {
	out := make([]any, len(args))
	for i, a := range args {
		if !bytes.Contains(a, []byte(binaryKey)) {
			if !json.Valid(a) {
				return nil, fmt.Errorf("args[%d]: invalid JSON", i)
			}
			out[i] = json.RawMessage(a)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(a))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("args[%d]: %w", i, err)
		}
		v, err := replaceBinary(v)
		if err != nil {
			return nil, fmt.Errorf("args[%d]: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

func replaceBinary(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		if b64, ok := t[binaryKey]; ok && len(t) == 1 {
			s, ok := b64.(string)
			if !ok {
				return nil, fmt.Errorf(`"$binary" must be a base64 string`)
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf(`"$binary": invalid base64: %w`, err)
			}
			return b, nil
		}
		for k, e := range t {
			r, err := replaceBinary(e)
			if err != nil {
				return nil, err
			}
			t[k] = r
		}
	case []any:
		for i, e := range t {
			r, err := replaceBinary(e)
			if err != nil {
				return nil, err
			}
			t[i] = r
		}
	}
	return v, nil
}

// ArgsToJSON turns arguments from a client into the JSON array the app receives: the raw JSON
// as the client sent it when there is no binary, otherwise with each attachment written as
// {"$binary":"<base64>"} in its place.
func ArgsToJSON(a socketio.Args) (json.RawMessage, error) {
	if len(a.Attachments) == 0 {
		if len(a.Raw) == 0 {
			return json.RawMessage("[]"), nil
		}
		return a.Raw, nil
	}
	vals, err := a.Decode()
	if err != nil {
		return nil, err
	}
	return json.Marshal(binaryToJSON(vals))
}

// binaryToJSON replaces []byte values with {"$binary": base64} maps, in place.
func binaryToJSON(v any) any {
	switch t := v.(type) {
	case []byte:
		return map[string]string{binaryKey: base64.StdEncoding.EncodeToString(t)}
	case []any:
		for i, e := range t {
			t[i] = binaryToJSON(e)
		}
	case map[string]any:
		for k, e := range t {
			t[k] = binaryToJSON(e)
		}
	}
	return v
}
