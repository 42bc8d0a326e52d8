package redisadapter

// keySlots is the number of hash slots of a Redis Cluster.
const keySlots = 16384

// keySlot is the hash slot of a key, or of a shard channel, on a Redis Cluster: CRC16
// (XMODEM) of the key modulo 16384, or of the part between the first "{" and the next "}"
// when that part is not empty (a hash tag), as the Redis Cluster specification defines it.
// SSUBSCRIBE and SUNSUBSCRIBE refuse channels of different slots in one command (CROSSSLOT),
// so the hub groups them by slot.
func keySlot(key string) int {
	for i := 0; i < len(key); i++ {
		if key[i] != '{' {
			continue
		}
		for j := i + 1; j < len(key); j++ {
			if key[j] == '}' {
				if j > i+1 {
					key = key[i+1 : j]
				}
				return int(crc16(key)) % keySlots
			}
		}
		break
	}
	return int(crc16(key)) % keySlots
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), bit by bit: slots are
// computed once per channel subscribed, never per message.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
