// Package wsframe reads the client-to-server direction of a WebSocket (RFC 6455) for a
// server that reads its connections without a goroutine each: engineio's poller hands it the
// bytes of each read, of any size, and it returns the messages and control frames they
// complete. Between reads it keeps only what an unfinished frame or message needs, so a
// connection between messages holds no buffer.
//
// It stands in for gorilla/websocket's server-side reader, which does the handshake and reads
// the connections that are not polled, and makes the same checks with the same outcomes:
//
//   - every frame masked (a client's frames are), reserved bits unset (no extension is
//     negotiated), opcodes known;
//   - control frames final and at most 125 bytes; continuations only inside a fragmented
//     message, and no new message before it ends;
//   - a close frame's status one a peer may send, and its reason valid UTF-8 (a payload of
//     one byte reads as no status, as gorilla reads it); a text message's data is not checked
//     for UTF-8, as gorilla does not check it;
//   - a message of more than the Reader's maxPayload bytes, counted over its fragments, fails
//     with websocket.ErrReadLimit; so does a 64-bit length with its top bit set.
//
// Errors are gorilla's too (a *ProtocolError reads as gorilla's, a *websocket.CloseError for a
// close frame, websocket.ErrReadLimit), so the session cannot tell which reader read the
// connection, and CloseReply is the close frame gorilla sends in answer to each but one: a
// 64-bit length with its top bit set, or one that overflows an int64 added to the message's
// length so far, gorilla refuses without a close frame, and CloseReply answers it with 1009
// as any message over the limit. FuzzReaderVsGorilla holds the two readers to the same
// messages, pings, pongs, errors and replies, on any bytes cut into any reads.
//
// It does not write frames (a server's frames are unmasked and built by the writer), does not
// do the opening handshake, and does not negotiate or inflate permessage-deflate. It knows
// nothing of Engine.IO: a message is opaque bytes.
package wsframe
