package socket

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// TestInventoryFrames: an inventory reaches the server's handler; one too
// large for a frame is refused by the client and the link stays usable.
func TestInventoryFrames(t *testing.T) {
	ts := serveAt(t, filepath.Join(t.TempDir(), "d.sock"))
	srv, path := ts.srv, ts.path
	var mu sync.Mutex
	var got []api.Inventory
	srv.OnInventory(func(inv api.Inventory) {
		mu.Lock()
		got = append(got, inv)
		mu.Unlock()
	})
	cl, err := Dial(path, policy.Identity{Container: "app"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	inv := api.Inventory{Container: "app", Hash: "sha256:1", Packages: []api.InventoryPackage{{Type: "dpkg", Name: "bash", Version: "5.2"}}}
	if err := cl.SendInventory(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	huge := inv
	huge.Packages = make([]api.InventoryPackage, 0, 100000)
	for range 100000 {
		huge.Packages = append(huge.Packages, api.InventoryPackage{Type: "npm", Name: strings.Repeat("x", 80), Version: "1.0.0"})
	}
	err = cl.SendInventory(context.Background(), huge)
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversize inventory: err = %v, want a frame-limit error", err)
	}
	if err := cl.Send(context.Background(), []api.Audit{{ID: "a", Message: "after"}}); err != nil {
		t.Fatal(err)
	}
	if a := ts.next(t); a.Message != "after" {
		t.Errorf("audit after the refused frame: %+v", a)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Packages[0].Name != "bash" {
		t.Errorf("server got inventories %+v, want the small one only", got)
	}
}
