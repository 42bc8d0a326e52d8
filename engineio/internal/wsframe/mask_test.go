package wsframe

import (
	"bytes"
	"testing"
)

func TestMaskBytes(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for n := range 40 {
		for pos := range 4 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(i * 7)
			}
			want := make([]byte, n)
			for i := range want {
				want[i] = b[i] ^ key[(pos+i)&3]
			}
			maskBytes(b, key, pos)
			if !bytes.Equal(b, want) {
				t.Fatalf("n %d pos %d: %x, want %x", n, pos, b, want)
			}
		}
	}
}
