package supervise

import "encoding/binary"

// seccompData is a seccomp_data record for x/net/bpf's VM. The VM loads
// big-endian, so the record is written big-endian: the same values the
// kernel's native-endian loads see.
func seccompData(arch, nr uint32) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b, nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	return b
}
