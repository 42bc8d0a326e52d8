package redisadapter

import "testing"

// TestKeySlot: the slots of the Redis Cluster specification's examples, hash tags included.
func TestKeySlot(t *testing.T) {
	for _, c := range []struct {
		key  string
		slot int
	}{
		{"123456789", 0x31c3 % keySlots}, // CRC16/XMODEM's check value
		{"foo", 12182},
		{"bar", 5061},
		{"{user1000}.following", 3443},
		{"{user1000}.followers", 3443},
		{"user1000", 3443},
		{"foo{}{bar}", keySlot("foo{}{bar}")},
		{"foo{{bar}}zap", keySlot("{bar")},
		{"foo{bar}{zap}", keySlot("bar")},
		{"{}", keySlot("{}")},
		{"", 0},
	} {
		if got := keySlot(c.key); got != c.slot {
			t.Errorf("keySlot(%q) = %d, want %d", c.key, got, c.slot)
		}
	}
	// An empty hash tag hashes the whole key.
	if keySlot("foo{}{bar}") != int(crc16("foo{}{bar}"))%keySlots {
		t.Errorf("an empty hash tag must hash the whole key")
	}
}
