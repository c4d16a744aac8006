package detect

import (
	"net/netip"
	"strings"
	"testing"
)

func TestStratumMethod(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"subscribe", `{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}` + "\n", "mining.subscribe"},
		{"authorize", `{"params":["wallet.worker","x"],"id":2,"method":"mining.authorize"}`, "mining.authorize"},
		{"spaces", "{\"method\" :\n \"mining.subscribe\"}", "mining.subscribe"},
		{"xmrig login", `{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"4A...","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/13.2.0","algo":["rx/0"]}}`, "login"},
		{"eth proxy", `{"id":1,"jsonrpc":"2.0","method":"eth_submitLogin","params":["0xabc"]}`, "eth_submitLogin"},
		{"second key", `{"method":"x","method":"mining.subscribe"}`, "mining.subscribe"},
		{"login without agent", `{"jsonrpc":"2.0","method":"login","params":{"user":"a","password":"b"}}`, ""},
		{"other json-rpc", `{"jsonrpc":"2.0","method":"eth_blockNumber","id":1}`, ""},
		{"http", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.5\r\n\r\n", ""},
		{"http body naming the method", "POST /q HTTP/1.1\r\n\r\n{\"text\":\"mining.subscribe\"}", ""},
		{"cut value", `{"method":"mining.subscr`, ""},
		{"cut key", `{"meth`, ""},
		{"method not a string", `{"method":1,"x":"mining.subscribe"}`, ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stratumMethod([]byte(tt.data)); got != tt.want {
				t.Errorf("stratumMethod(%q) = %q, want %q", tt.data, got, tt.want)
			}
		})
	}
}

func TestPayloadFinding(t *testing.T) {
	en := &Engine{}
	addr := netip.MustParseAddrPort("127.0.0.1:8443")
	fs := en.Payload(addr, []byte(`{"id":1,"method":"mining.subscribe","params":[]}`), "/usr/bin/bash")
	if len(fs) != 1 || fs[0].Detector.ID != Miner.ID || !strings.Contains(fs[0].Message, "Stratum handshake (mining.subscribe) to 127.0.0.1:8443 by /usr/bin/bash") {
		t.Errorf("findings %+v", fs)
	}
	if fs := en.Payload(addr, []byte("GET / HTTP/1.1\r\n\r\n"), "/usr/bin/curl"); len(fs) != 0 {
		t.Errorf("an HTTP request: findings %+v", fs)
	}
}

func FuzzStratumMethod(f *testing.F) {
	f.Add([]byte(`{"id":1,"method":"mining.subscribe"}`))
	f.Add([]byte(`{"method":"login","params":{"agent":"x"}}`))
	f.Add([]byte(`"method""method":"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := stratumMethod(b)
		if m != "" && !strings.Contains(string(b), `"`+m+`"`) {
			t.Fatalf("method %q not in %q", m, b)
		}
	})
}
