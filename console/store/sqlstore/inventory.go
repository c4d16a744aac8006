package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/store"
)

// SaveInventory implements store.Store.
func (s *DB) SaveInventory(ctx context.Context, si store.StoredInventory) error {
	inv := si.Inventory
	body, err := json.Marshal(inv)
	if err != nil {
		return fmt.Errorf("save inventory: %w", err)
	}
	family := api.SafeText(inv.TaskFamily)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save inventory: %w", err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, s.dialect.rebind(`INSERT INTO inventories
		(task_family, task_id, container, image, image_digest, hash, received_at, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (task_family, task_id, container) DO UPDATE SET
		image = excluded.image, image_digest = excluded.image_digest, hash = excluded.hash,
		received_at = excluded.received_at, body = excluded.body`),
		family, api.SafeText(inv.TaskID), api.SafeText(inv.Container), api.SafeText(inv.Image),
		api.SafeText(inv.ImageDigest), api.SafeText(inv.Hash), millis(si.ReceivedAt), string(body))
	if err != nil {
		return fmt.Errorf("save inventory of container %q: %w", inv.Container, err)
	}
	// The family keeps its newest MaxInventoriesPerFamily (the one just
	// saved among them: it is the newest unless the clock went back).
	_, err = tx.ExecContext(ctx, s.dialect.rebind(`DELETE FROM inventories WHERE task_family = ? AND seq NOT IN
		(SELECT seq FROM inventories WHERE task_family = ? ORDER BY received_at DESC, seq DESC LIMIT ?)`),
		family, family, store.MaxInventoriesPerFamily)
	if err != nil {
		return fmt.Errorf("save inventory: replace the oldest of task family %q: %w", family, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save inventory of container %q: %w", inv.Container, err)
	}
	return nil
}

// InventoryHeads implements store.Store.
func (s *DB) InventoryHeads(ctx context.Context, q store.InventoryQuery) ([]store.InventoryHead, error) {
	where, args := "", []any{}
	if q.Image != "" {
		where, args = " WHERE image = ?", append(args, q.Image)
	}
	limit := pageSize(q.Limit, store.MaxInventories, store.MaxInventories)
	rows, err := s.query(ctx, `SELECT seq, received_at, task_family, task_id, container, image, image_digest, hash FROM inventories`+where+
		` ORDER BY received_at DESC, seq DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list inventories: %w", err)
	}
	defer rows.Close()
	var out []store.InventoryHead
	for rows.Next() {
		var h store.InventoryHead
		var at int64
		if err := rows.Scan(&h.ID, &at, &h.TaskFamily, &h.TaskID, &h.Container, &h.Image, &h.ImageDigest, &h.Hash); err != nil {
			return nil, fmt.Errorf("list inventories: %w", err)
		}
		h.ReceivedAt = fromMillis(at)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list inventories: %w", err)
	}
	return out, nil
}

// Inventories implements store.Store.
func (s *DB) Inventories(ctx context.Context, q store.InventoryQuery) ([]store.StoredInventory, error) {
	where, args := "", []any{}
	if q.Image != "" {
		where, args = " WHERE image = ?", append(args, q.Image)
	}
	limit := pageSize(q.Limit, store.MaxInventories, store.MaxInventories)
	rows, err := s.query(ctx, `SELECT seq, received_at, body FROM inventories`+where+
		` ORDER BY received_at DESC, seq DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list inventories: %w", err)
	}
	defer rows.Close()
	var out []store.StoredInventory
	for rows.Next() {
		si, err := scanInventory(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, si)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list inventories: %w", err)
	}
	return out, nil
}

// Inventory implements store.Store.
func (s *DB) Inventory(ctx context.Context, id int64) (store.StoredInventory, error) {
	si, err := scanInventory(s.queryRow(ctx, `SELECT seq, received_at, body FROM inventories WHERE seq = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.StoredInventory{}, fmt.Errorf("inventory %d: %w", id, store.ErrNotFound)
	}
	return si, err
}

func scanInventory(row interface{ Scan(...any) error }) (store.StoredInventory, error) {
	var si store.StoredInventory
	var at int64
	var body string
	if err := row.Scan(&si.ID, &at, &body); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return si, err
		}
		return si, fmt.Errorf("read inventory: %w", err)
	}
	si.ReceivedAt = fromMillis(at)
	if err := json.Unmarshal([]byte(body), &si.Inventory); err != nil {
		return si, fmt.Errorf("read inventory %d: %w", si.ID, err)
	}
	return si, nil
}
