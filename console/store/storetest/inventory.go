package storetest

import (
	"context"
	"errors"
	"testing"

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
}
