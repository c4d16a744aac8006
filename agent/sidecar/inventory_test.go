package sidecar

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskguard/taskguard/agent/socket"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// TestInventoryForwarded: an inventory a launcher sends over the socket
// reaches the console labelled with the task family, once, after the
// console was away; an invalid one is dropped.
func TestInventoryForwarded(t *testing.T) {
	cc, c := newConsole(t, &policy.Policy{})
	cc.Stop()
	sock := filepath.Join(t.TempDir(), "d.sock")
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Run(ctx, Options{SocketPath: sock, StateDir: t.TempDir(), Console: c, PolicyWait: time.Second, TaskFamily: "shop", Ready: ready})
	}()
	<-ready
	cl, err := socket.Dial(sock, policy.Identity{TaskFamily: "shop", Container: "web"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.SendInventory(ctx, api.Inventory{Container: ""}); err != nil {
		t.Fatal(err)
	}
	inv := api.Inventory{TaskID: "t1", Container: "web", Hash: "sha256:ab", Time: time.Now().UTC(),
		Packages: []api.InventoryPackage{{Type: "dpkg", Name: "openssl", Version: "3.0.11-1~deb12u2"}}}
	if err := cl.SendInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	// The sidecar forwards inventories in the order it reads them from one
	// connection: once the valid one is at the console, the invalid one sent
	// before it would be there too had it been forwarded.
	cc.Restart()
	var got []api.TaskImage
	waitFor(t, func() bool { got = cc.TaskImages(); return len(got) >= 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got = cc.TaskImages(); len(got) != 1 {
		t.Fatalf("console holds %d inventories, want 1: %+v", len(got), got)
	}
	if got[0].TaskFamily != testFamily || got[0].Container != "web" || got[0].Packages != 1 {
		t.Errorf("inventory = %+v", got[0])
	}
}
