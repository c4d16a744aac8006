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
	// A task family keeps at most MaxInventoriesPerFamily inventories: a new
	// task and container beyond that replaces the family's oldest one, so
	// that one agent credential cannot fill the console.
	SaveInventory(ctx context.Context, inv StoredInventory) error
	// Inventories returns stored inventories matching q, newest first.
	// Each may be as large as an upload (16 MiB): callers that go through
	// many use InventoryHeads and read the bodies one by one.
	Inventories(ctx context.Context, q InventoryQuery) ([]StoredInventory, error)
	// InventoryHeads returns what identifies the stored inventories
	// matching q, newest first, without their packages and findings.
	InventoryHeads(ctx context.Context, q InventoryQuery) ([]InventoryHead, error)
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

// InventoryHead is a stored inventory without its body: enough to list,
// filter and read it (Inventory) when needed.
type InventoryHead struct {
	ID          int64
	ReceivedAt  time.Time
	TaskFamily  string
	TaskID      string
	Container   string
	Image       string
	ImageDigest string
	Hash        string
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

// MaxInventoriesPerFamily bounds the inventories kept per task family
// (distinct tasks and containers): beyond it, saving replaces the family's
// oldest.
const MaxInventoriesPerFamily = 256
