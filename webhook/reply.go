package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/siobridge/siobridge/internal/command"
	"github.com/siobridge/siobridge/internal/didyoumean"
)

// replyKeys are the keys of a reply's JSON object, in the order the docs list them.
var replyKeys = []string{"ack", "emit", "join", "leave", "disconnect", "data", "message"}

// emitKeys are the keys of an item of a reply's "emit" list.
var emitKeys = []string{"namespace", "to", "except", "event", "args", "volatile", "ack_timeout_ms"}

// parseReply reads the actions a reply's body asks for, as strictly as POST /emit reads its
// body, but key by key: problems lists, in the app's words, each key that is unknown or has a
// value of the wrong type, and each emit item that cannot be read; the other keys' actions
// stand. An empty body, or one that is not JSON (text such as "OK"), asks for nothing. err
// says why a body that looks like JSON (it starts with '{' or '[') cannot be read as an
// object; then nothing applies.
func parseReply(body []byte) (acts Actions, problems []string, err error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return acts, nil, nil
	}
	switch trimmed[0] {
	case '{':
	case '[':
		return acts, nil, errors.New("the reply is a JSON array: it must be a JSON object of actions")
	default:
		return acts, nil, nil
	}
	if args, ok := ackOnly(trimmed); ok {
		return Actions{Ack: &args}, nil, nil
	}
	return parseReplyObject(trimmed)
}

// parseReplyObject is parseReply for a body that starts with '{', key by key.
func parseReplyObject(trimmed []byte) (acts Actions, problems []string, err error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return acts, nil, fmt.Errorf("the reply is not valid JSON: %s", jsonErrorText(err))
	}
	bad := func(key, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%q: "+format, append([]any{key}, args...)...))
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		raw := fields[key]
		isNull := string(raw) == "null"
		switch key {
		case "ack":
			if isNull {
				continue
			}
			var args []json.RawMessage
			if json.Unmarshal(raw, &args) != nil {
				bad(key, "must be an array of the ack's arguments, such as [true], got %s", jsonType(raw))
				continue
			}
			acts.Ack = &args
		case "emit":
			acts.Emit, problems = parseEmits(raw, problems)
		case "join", "leave":
			var rooms []string
			if json.Unmarshal(raw, &rooms) != nil {
				bad(key, "must be an array of room names, got %s", jsonType(raw))
				continue
			}
			if key == "join" {
				acts.Join = rooms
			} else {
				acts.Leave = rooms
			}
		case "disconnect":
			if json.Unmarshal(raw, &acts.Disconnect) != nil {
				bad(key, "must be true or false, got %s", jsonType(raw))
			}
		case "data":
			if !isNull {
				acts.Data = raw
			}
		case "message":
			if json.Unmarshal(raw, &acts.Message) != nil {
				bad(key, "must be a string, got %s", jsonType(raw))
			}
		default:
			problems = append(problems, unknownKey(key, "", replyKeys))
		}
	}
	return acts, problems, nil
}

// ackPrefix starts the reply most apps send to an event: {"ack":[...]} and nothing else.
var ackPrefix = []byte(`{"ack":[`)

// ackOnly reads body, trimmed on the left, when it is {"ack":<array>} with no other key and
// no space before the array: the array's items, as parseReply's general path reads them,
// without a map of the keys. ok is false for any other body, which that path reads.
func ackOnly(body []byte) (args []json.RawMessage, ok bool) {
	if !bytes.HasPrefix(body, ackPrefix) {
		return nil, false
	}
	v := bytes.TrimRight(body, " \t\r\n")
	if v[len(v)-1] != '}' {
		return nil, false
	}
	// Unmarshal fails unless what is between "ack": and the last } is one JSON value (an
	// array, since it starts with '['), so the body is an object of that one key.
	if json.Unmarshal(v[len(ackPrefix)-1:len(v)-1], &args) != nil {
		return nil, false
	}
	return args, true
}

// parseEmits reads a reply's "emit" list, leaving out the items it cannot read.
func parseEmits(raw json.RawMessage, problems []string) ([]command.EmitRequest, []string) {
	var items []json.RawMessage
	if string(raw) == "null" {
		return nil, problems
	}
	if json.Unmarshal(raw, &items) != nil {
		return nil, append(problems, fmt.Sprintf(`"emit": must be an array of emits, each shaped like a POST /emit body, got %s`, jsonType(raw)))
	}
	emits := make([]command.EmitRequest, 0, len(items))
	for i, item := range items {
		where := fmt.Sprintf(`"emit"[%d]`, i)
		var fields map[string]json.RawMessage
		if json.Unmarshal(item, &fields) != nil {
			problems = append(problems, fmt.Sprintf("%s: must be an object shaped like a POST /emit body, got %s", where, jsonType(item)))
			continue
		}
		var unknown []string
		for k := range fields {
			if !slices.Contains(emitKeys, k) {
				unknown = append(unknown, unknownKey(k, where, emitKeys))
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			problems = append(problems, unknown...)
			continue
		}
		var em command.EmitRequest
		if err := json.Unmarshal(item, &em); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s", where, jsonErrorText(err)))
			continue
		}
		emits = append(emits, em)
	}
	return emits, problems
}

// unknownKey describes a key that a reply may not have, with the known key it was perhaps
// meant to be.
func unknownKey(key, where string, known []string) string {
	at := fmt.Sprintf("%q", key)
	if where != "" {
		at = where + "." + at
	}
	msg := "unknown key " + at
	if s := didyoumean.Suggest(didyoumean.Closest(key, known)); s != "" {
		return msg + ": " + s
	}
	return msg + " (known keys: " + strings.Join(known, ", ") + ")"
}

// jsonType names the type of a JSON value, for messages.
func jsonType(raw json.RawMessage) string {
	v := bytes.TrimLeft(raw, " \t\r\n")
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// jsonErrorText says what encoding/json found wrong, without its Go words.
func jsonErrorText(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("%s at byte offset %d", strings.TrimPrefix(syntax.Error(), "json: "), syntax.Offset)
	case errors.As(err, &typ):
		got := typeOfJSON(typ.Value)
		if typ.Field == "" {
			return fmt.Sprintf("must be %s, got %s", command.JSONKind(typ.Type), got)
		}
		field := typ.Field[strings.LastIndexByte(typ.Field, '.')+1:]
		return fmt.Sprintf("%q must be %s, got %s", field, command.JSONKind(typ.Type), got)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends in the middle of a value"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// typeOfJSON turns the Value of a json.UnmarshalTypeError ("string", "number 5"...) into words.
func typeOfJSON(v string) string {
	v, _, _ = strings.Cut(v, " ")
	switch v {
	case "object", "array":
		return "an " + v
	case "":
		return "another value"
	}
	return "a " + v
}
