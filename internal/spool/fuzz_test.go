package spool

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// FuzzSpoolRecord feeds the segment reader arbitrary bytes after a valid header: it never
// panics nor allocates past the segment's size, every record it accepts encodes back to the
// bytes it was read from, and it stops at the first bad one.
func FuzzSpoolRecord(f *testing.F) {
	frame := func(payload []byte) []byte {
		var h [spoolRecordHead]byte
		binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
		binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(payload, crcTable))
		return append(h[:], payload...)
	}
	rec := &Record{Key: "sock", ID: "id1", Kind: "event", Body: []byte(`{"type":"event"}`)}
	good := append(frame(encodeAppend(nil, 1, rec)), frame(binary.AppendUvarint([]byte{recDone}, 1))...)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(frame([]byte{recAppend, 1, 200}))
	f.Add(frame([]byte{recDone}))
	f.Add(frame([]byte{recDone, 0x81, 0x00})) // a longer than needed varint
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		seg := append([]byte(spoolMagic), data...)
		var framed int64
		end, err := scanSegment(bytes.NewReader(seg), int64(len(seg)), func(r spoolRecord, size int64) {
			var payload []byte
			switch r.typ {
			case recAppend:
				payload = encodeAppend(nil, r.seq, &Record{Key: r.key, ID: r.id, Kind: r.kind, Body: r.body})
			case recDone:
				payload = binary.AppendUvarint([]byte{recDone}, r.seq)
			default:
				t.Fatalf("record of type %q accepted", r.typ)
			}
			off := int64(len(spoolMagic)) + framed
			if !bytes.Equal(frame(payload), seg[off:off+size]) {
				t.Fatalf("record at %d re-encodes differently", off)
			}
			framed += size
		})
		if end != int64(len(spoolMagic))+framed {
			t.Fatalf("scan ended at %d after %d bytes of records", end, framed)
		}
		if (err == nil) != (end == int64(len(seg))) {
			t.Fatalf("scan ended at %d of %d with err %v", end, len(seg), err)
		}
	})
}
