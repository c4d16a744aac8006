package store

import (
	"context"
	"time"

	"github.com/taskguard/taskguard/console/api"
)

// InventoryStore keeps the inventories defenders send of the containers
// they run in: the latest one per task family, task and container. The
// store does not match vulnerabilities; the server does, against its
// current DB, each time it reads them.
type InventoryStore interface {
	// SaveInventory stores inv as the current inventory of its task family,
	// task and container, replacing the previous one (which keeps its ID).
	SaveInventory(ctx context.Context, inv StoredInventory) error
	// Inventories returns stored inventories matching q, newest first.
	Inventories(ctx context.Context, q InventoryQuery) ([]StoredInventory, error)
	// Inventory returns one by ID, or ErrNotFound.
	Inventory(ctx context.Context, id int64) (StoredInventory, error)
}

// StoredInventory is one container's inventory as the console keeps it.
type StoredInventory struct {
	// ID is assigned by the store and stays when the inventory is replaced.
	ID         int64
	ReceivedAt time.Time
	Inventory  api.Inventory
}

// InventoryQuery filters inventories; zero fields do not filter.
type InventoryQuery struct {
	// Image is the exact image reference.
	Image string
	// Limit bounds the result (1..MaxInventories; 0 means MaxInventories).
	Limit int
}

// MaxInventories bounds one query's result.
const MaxInventories = 5000
