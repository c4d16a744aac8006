package sidecar

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
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

// An inventory the console refuses (a 4xx but 401/403/408/429) is dropped,
// not retried; one it fails on (503) is retried with backoff.
func TestInventoryRefusedIsDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		posts := map[string]int{}
		post := func(_ context.Context, inv api.Inventory) error {
			mu.Lock()
			defer mu.Unlock()
			posts[inv.Container]++
			if inv.Container == "refused" {
				return &api.StatusError{StatusCode: http.StatusBadRequest, Message: "packages[3].name is empty"}
			}
			return &api.StatusError{StatusCode: http.StatusServiceUnavailable}
		}
		f := newInventoryForwarder(post, "shop", slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.run(ctx) }()
		for _, c := range []string{"refused", "unavailable"} {
			f.add(api.Inventory{TaskID: "t1", Container: c, Hash: "sha256:ab", Time: time.Now().UTC()})
		}
		time.Sleep(10 * time.Minute) // the fake clock: backoff 1 s doubling to 5 min
		synctest.Wait()
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if posts["refused"] != 1 {
			t.Errorf("the refused inventory was posted %d times, want once", posts["refused"])
		}
		if n := posts["unavailable"]; n < 5 || n > 12 {
			t.Errorf("the inventory answered 503 was posted %d times in 10 minutes, want a backoff of 1 s doubling to 5 min", n)
		}
	})
}
