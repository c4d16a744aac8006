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
	_, err = s.exec(ctx, `INSERT INTO inventories
		(task_family, task_id, container, image, image_digest, hash, received_at, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (task_family, task_id, container) DO UPDATE SET
		image = excluded.image, image_digest = excluded.image_digest, hash = excluded.hash,
		received_at = excluded.received_at, body = excluded.body`,
		api.SafeText(inv.TaskFamily), api.SafeText(inv.TaskID), api.SafeText(inv.Container), api.SafeText(inv.Image),
		api.SafeText(inv.ImageDigest), api.SafeText(inv.Hash), millis(si.ReceivedAt), string(body))
	if err != nil {
		return fmt.Errorf("save inventory of container %q: %w", inv.Container, err)
	}
	return nil
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
