package server

import (
	"encoding/json"
	"testing"

	"github.com/taskguard/taskguard/console/api"
)

// FuzzParseInventory: a defender's inventory body never panics the parser;
// what it accepts has a container, a hash and named packages, and survives
// a round trip.
func FuzzParseInventory(f *testing.F) {
	for _, seed := range []string{
		`{"container":"web","hash":"sha256:1","packages":[{"type":"dpkg","name":"bash","version":"5.2"}],"os":{"family":"debian","name":"12.5"}}`,
		`{"container":"web","hash":"sha256:1","packages":[],"compliance":[{"checkID":"TG-IMG-001"}]}`,
		`{"container":"","hash":"x"}`, `{"container":"c","hash":"h","packages":[{"type":"","name":"x"}]}`,
		`{"container":"c","hash":"h","time":"yesterday"}`, `{"container":"c","hash":"h","packages":{}}`, `[]`, `{`, ``, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		inv, err := parseInventory(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if inv.Container == "" || inv.Hash == "" || len(inv.Packages) > api.MaxInventoryPackages {
			t.Fatalf("accepted %+v", inv)
		}
		for _, p := range inv.Packages {
			if p.Type == "" || p.Name == "" {
				t.Fatalf("accepted package %+v", p)
			}
		}
		again, err := json.Marshal(inv)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseInventory(again); err != nil {
			t.Fatalf("round trip of %s: %v", again, err)
		}
	})
}
