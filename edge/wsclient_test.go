package edge

import "encoding/binary"

// clientFrame builds a masked client frame: first byte b0, then payload.
func clientFrame(b0 byte, payload []byte) []byte {
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i%4])
	}
	return out
}
