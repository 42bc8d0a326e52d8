// Package jsonw is siobridge's one JSON writer for its hot paths: the arguments of the
// Socket.IO packets it sends (socketio.EncodeArgs), the JSON of broadcasts that come from
// other cluster nodes (socketio/redisadapter) and the body of the event webhook (webhook). A
// value reads the same whichever of them writes it.
//
// It writes exactly what encoding/json writes for the same value with HTML escaping off (an
// Encoder after SetEscapeHTML(false), without the newline). That is also what JavaScript's
// JSON.stringify, and so a Node.js Socket.IO server, writes, but for U+2028 and U+2029, which
// JSON.stringify leaves as they are (the same string either way):
//
//   - strings: '"', '\' and control characters escaped (\b \f \n \r \t, the rest as \u00XX),
//     U+2028 and U+2029 as \u2028 and \u2029, each byte of invalid UTF-8 as \ufffd; '<', '>'
//     and '&' as they are, as JSON.stringify writes them (these payloads are never part of an
//     HTML page, and escaping would cost five bytes each);
//   - numbers: the shortest digits that read back as the same float, in plain notation from
//     1e-6 to 1e21 and in exponent notation outside ("1e-7", "1e+21"), float32 with float32's
//     digits; -0 is "-0", as encoding/json writes it (JSON.stringify writes "0": both read back
//     equal, and Node.js peers send -0 as the integer 0 anyway);
//   - json.Number: validated, "" as 0;
//   - map[string]any: keys in sorted order.
//
// With one difference: a json.RawMessage is validated and written as it is (nil as null),
// where encoding/json also compacts it. The two outputs differ only in whitespace between
// tokens of the raw JSON (json.Compact of this one is encoding/json's), and the app's JSON that
// POST /emit hands over reaches clients as the app wrote it: compacting costs a third more
// than validating, on the path of every emit with raw arguments.
//
// Where encoding/json fails, there is one substitution: NaN, +Inf and -Inf are written as
// null, as JSON.stringify writes them. A Go app's Emit(math.NaN()) thus reaches clients as a
// Node.js server's emit(NaN) would, and a NaN that a Node.js node sends through Redis (msgpack
// carries it) reaches this node's clients as it reaches the Node.js node's own. Everything
// else encoding/json refuses is an error here too, as are nesting deeper than MaxDepth (which
// also ends cycles), an invalid json.RawMessage and an invalid json.Number.
//
// Only the types above, bool, the integer types, []any and []byte are written here; any other
// value (a struct, a typed slice or map, a pointer) is handed to encoding/json, whose rules
// then apply to all of it, including its error for NaN. A []byte is written by the caller's
// Binary hook when there is one (Socket.IO's attachment placeholders), as encoding/json writes
// it (base64) otherwise.
//
// It is not a general encoder (no reflection of its own, no streaming, no options), and it
// does not read JSON. FuzzJSONWriter checks it against encoding/json.
package jsonw
