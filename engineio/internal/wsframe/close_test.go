package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/gorilla/websocket"
)

// A close frame ends reading with a close error; the reply echoes its status, or is empty
// when it had none.
func TestReaderClose(t *testing.T) {
	for _, tt := range []struct {
		payload []byte
		code    int
		reply   []byte
	}{
		{binary.BigEndian.AppendUint16(nil, 1001), 1001, []byte{0x03, 0xe9}},
		{append(binary.BigEndian.AppendUint16(nil, 4000), "bye"...), 4000, []byte{0x0f, 0xa0}},
		{nil, websocket.CloseNoStatusReceived, nil},
	} {
		r := NewReader(100)
		stream := append(clientFrame(true, OpText, []byte("4a"), testKey), clientFrame(true, OpClose, tt.payload, testKey)...)
		evs, err := feed(&r, stream, 1)
		var ce *websocket.CloseError
		if len(evs) != 1 || !errors.As(err, &ce) || ce.Code != tt.code {
			t.Fatalf("%q: events %s, err %v; want the message, then close %d", tt.payload, describe(evs), err, tt.code)
		}
		if reply, ok := CloseReply(err); !ok || !bytes.Equal(reply, tt.reply) {
			t.Fatalf("%q: reply %q %v, want %q", tt.payload, reply, ok, tt.reply)
		}
	}
	if _, ok := CloseReply(&websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()}); ok {
		t.Fatal("a connection that ended without a close frame gets a close reply")
	}
}
