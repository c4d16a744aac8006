package detect

import "net/netip"

func netipFrom(b []byte) string {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return "?"
	}
	return a.Unmap().String()
}
