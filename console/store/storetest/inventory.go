package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/store"
)

func inventory(family, task, container, image, hash string, pkgs ...string) api.Inventory {
	inv := api.Inventory{TaskFamily: family, TaskID: task, Container: container, Image: image, Hash: hash,
		OS: &api.InventoryOS{Family: "debian", Name: "12.5"}}
	for _, p := range pkgs {
		inv.Packages = append(inv.Packages, api.InventoryPackage{Type: "dpkg", Name: p, Version: "1.0"})
	}
	return inv
}

// testInventories: one inventory per task family, task and container, the
// newest replacing the older (keeping its ID), filters and lookup by ID.
func testInventories(t *testing.T, s store.Store) {
	ctx := context.Background()
	save := func(si store.StoredInventory) {
		t.Helper()
		if err := s.SaveInventory(ctx, si); err != nil {
			t.Fatal(err)
		}
	}
	save(store.StoredInventory{ReceivedAt: base, Inventory: inventory("shop", "t1", "web", "shop/web:1", "sha256:a", "openssl")})
	save(store.StoredInventory{ReceivedAt: base.Add(1e9), Inventory: inventory("shop", "t1", "db", "postgres:16", "sha256:b", "libpq5")})
	all, err := s.Inventories(ctx, store.InventoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Inventory.Container != "db" || all[1].Inventory.Container != "web" {
		t.Fatalf("inventories = %+v, want db then web (newest first)", all)
	}
	webID := all[1].ID
	save(store.StoredInventory{ReceivedAt: base.Add(2e9), Inventory: inventory("shop", "t1", "web", "shop/web:2", "sha256:c", "openssl", "curl")})
	all, err = s.Inventories(ctx, store.InventoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != webID || all[0].Inventory.Image != "shop/web:2" || len(all[0].Inventory.Packages) != 2 {
		t.Fatalf("after the replacement: %+v, want web replaced in place with 2 packages", all)
	}
	if !all[0].ReceivedAt.Equal(base.Add(2e9)) {
		t.Errorf("received at %v, want %v", all[0].ReceivedAt, base.Add(2e9))
	}
	only, err := s.Inventories(ctx, store.InventoryQuery{Image: "postgres:16"})
	if err != nil {
		t.Fatal(err)
	}
	if len(only) != 1 || only[0].Inventory.Container != "db" {
		t.Errorf("image filter: %+v", only)
	}
	one, err := s.Inventory(ctx, webID)
	if err != nil {
		t.Fatal(err)
	}
	if one.Inventory.Hash != "sha256:c" || one.Inventory.OS == nil || one.Inventory.OS.Name != "12.5" {
		t.Errorf("inventory %d = %+v", webID, one.Inventory)
	}
	if _, err := s.Inventory(ctx, webID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown ID: err = %v, want ErrNotFound", err)
	}
	heads, err := s.InventoryHeads(ctx, store.InventoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	want := store.InventoryHead{ID: webID, ReceivedAt: base.Add(2e9), TaskFamily: "shop", TaskID: "t1", Container: "web", Image: "shop/web:2", Hash: "sha256:c"}
	if len(heads) != 2 || heads[0] != want || heads[1].Container != "db" || heads[1].ID != all[1].ID {
		t.Errorf("heads = %+v, want %+v then db", heads, want)
	}
	if heads, err := s.InventoryHeads(ctx, store.InventoryQuery{Image: "postgres:16", Limit: 1}); err != nil || len(heads) != 1 || heads[0].Container != "db" {
		t.Errorf("heads of postgres:16 = %+v, %v", heads, err)
	}
}

// testInventoryFamilyCap: a task family keeps its newest
// MaxInventoriesPerFamily inventories; more distinct tasks and containers
// replace its oldest, and other families keep theirs.
func testInventoryFamilyCap(t *testing.T, s store.Store) {
	ctx := context.Background()
	other := store.StoredInventory{ReceivedAt: base, Inventory: inventory("other", "t0", "app", "app:1", "sha256:o", "zlib")}
	if err := s.SaveInventory(ctx, other); err != nil {
		t.Fatal(err)
	}
	extra := 10
	for i := range store.MaxInventoriesPerFamily + extra {
		si := store.StoredInventory{ReceivedAt: base.Add(time.Duration(i+1) * time.Second),
			Inventory: inventory("flood", fmt.Sprintf("task-%d", i), "c", "img:1", "sha256:f", "openssl")}
		if err := s.SaveInventory(ctx, si); err != nil {
			t.Fatal(err)
		}
	}
	heads, err := s.InventoryHeads(ctx, store.InventoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	flood, others := 0, 0
	oldestKept := ""
	for _, h := range heads {
		switch h.TaskFamily {
		case "flood":
			flood++
			oldestKept = h.TaskID
		case "other":
			others++
		}
	}
	if flood != store.MaxInventoriesPerFamily || others != 1 {
		t.Fatalf("kept %d of family flood (want %d) and %d of other (want 1)", flood, store.MaxInventoriesPerFamily, others)
	}
	if want := fmt.Sprintf("task-%d", extra); oldestKept != want {
		t.Errorf("oldest kept = %s, want %s (the %d oldest replaced)", oldestKept, want, extra)
	}
	// Replacing an existing task and container does not drop anything.
	si := store.StoredInventory{ReceivedAt: base.Add(time.Hour), Inventory: inventory("flood", oldestKept, "c", "img:2", "sha256:g", "openssl")}
	if err := s.SaveInventory(ctx, si); err != nil {
		t.Fatal(err)
	}
	if heads, err = s.InventoryHeads(ctx, store.InventoryQuery{}); err != nil || len(heads) != store.MaxInventoriesPerFamily+1 || heads[0].TaskID != oldestKept {
		t.Errorf("after replacing %s: %d heads, newest %+v, %v", oldestKept, len(heads), heads[0], err)
	}
}
