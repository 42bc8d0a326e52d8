package wsframe

import "encoding/binary"

// maskBytes unmasks b, whose first byte is the payload's byte at offset pos.
func maskBytes(b []byte, key [4]byte, pos int) {
	pos &= 3
	// Word at a time once aligned on the key.
	for len(b) > 0 && pos != 0 {
		b[0] ^= key[pos]
		b = b[1:]
		pos = (pos + 1) & 3
	}
	k := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k) | uint64(k)<<32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
}
