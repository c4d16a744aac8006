package detect

import (
	"bytes"
	"net/netip"
)

// stratumMethods are the JSON-RPC methods a Stratum client sends first:
// mining.subscribe and mining.authorize (Stratum v1), mining.extranonce.subscribe,
// eth_submitLogin (the Ethereum proxy dialect) and login, which counts only
// with an "agent" member (XMRig and its forks announce themselves there;
// many unrelated JSON APIs have a login method).
var stratumMethods = []string{"mining.subscribe", "mining.authorize", "mining.extranonce.subscribe", "eth_submitLogin"}

// stratumMethod reports the Stratum method that data, the start of what a
// process sends on a new connection, calls ("" when none). data is hostile
// and may be cut anywhere; it is scanned, not parsed, and never more than
// once per "method" key.
func stratumMethod(data []byte) string {
	rest := data
	for {
		i := bytes.Index(rest, []byte(`"method"`))
		if i < 0 {
			return ""
		}
		rest = rest[i+len(`"method"`):]
		v := skipSpace(rest)
		if len(v) == 0 || v[0] != ':' {
			continue
		}
		v = skipSpace(v[1:])
		if len(v) == 0 || v[0] != '"' {
			continue
		}
		end := bytes.IndexByte(v[1:], '"')
		if end < 0 {
			return ""
		}
		m := string(v[1 : 1+end])
		for _, s := range stratumMethods {
			if m == s {
				return m
			}
		}
		if m == "login" && bytes.Contains(data, []byte(`"agent"`)) {
			return m
		}
	}
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}

// Payload runs the payload detectors on data, the first bytes exe sends on
// its new connection to addr.
func (en *Engine) Payload(addr netip.AddrPort, data []byte, exe string) []Finding {
	if m := stratumMethod(data); m != "" {
		return []Finding{{Detector: Miner, Message: "Stratum handshake (" + m + ") to " + addr.String() + " by " + exe}}
	}
	return nil
}
