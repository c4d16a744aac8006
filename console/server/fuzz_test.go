package server

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseAuthenticate feeds outside input to the authenticate body parser:
// it must never panic, must name the problem when it refuses, and what it
// accepts must survive a round trip.
func FuzzParseAuthenticate(f *testing.F) {
	for _, seed := range []string{
		`{"username":"admin","password":"secret-password"}`,
		`{"username":"a","password":"b"}`,
		`{"username":"admin"}`,
		`{"username":5,"password":"x"}`,
		`{"user":"a"}`,
		`{"username":"a","password":"b"} {}`,
		`{"username":"\u00e9\ud800","password":"\\"}`,
		`null`, `[]`, `""`, ``, `{`, `{"username":"a",`,
		"\xff\xfe{}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseAuthenticate(body)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "request body") {
				t.Fatalf("error %q does not say it is about the request body", err)
			}
			if req.Username != "" || req.Password != "" {
				t.Fatalf("a refused body returned credentials %+v", req)
			}
			return
		}
		if req.Username == "" || req.Password == "" {
			t.Fatalf("accepted %q with an empty field: %+v", body, req)
		}
		if !utf8.ValidString(req.Username) || !utf8.ValidString(req.Password) {
			t.Fatalf("accepted invalid UTF-8 from %q", body)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseAuthenticate(again)
		if err != nil || back != req {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", again, back, err, req)
		}
	})
}
