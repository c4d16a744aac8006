package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/taskguard/taskguard/console/store"
)

// SaveInventory implements store.Store.
func (d *DB) SaveInventory(ctx context.Context, si store.StoredInventory) error {
	inv := si.Inventory
	body, err := json.Marshal(inv)
	if err != nil {
		return fmt.Errorf("save inventory: %w", err)
	}
	_, err = d.pool.Exec(ctx, `INSERT INTO inventories
		(task_family, task_id, container, image, image_digest, hash, received_at, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (task_family, task_id, container) DO UPDATE SET
		image = excluded.image, image_digest = excluded.image_digest, hash = excluded.hash,
		received_at = excluded.received_at, body = excluded.body`,
		inv.TaskFamily, inv.TaskID, inv.Container, inv.Image, inv.ImageDigest, inv.Hash, millis(si.ReceivedAt), string(body))
	if err != nil {
		return fmt.Errorf("save inventory of container %q: %w", inv.Container, err)
	}
	return nil
}

// Inventories implements store.Store.
func (d *DB) Inventories(ctx context.Context, q store.InventoryQuery) ([]store.StoredInventory, error) {
	limit := q.Limit
	if limit <= 0 || limit > store.MaxInventories {
		limit = store.MaxInventories
	}
	rows, err := d.pool.Query(ctx, `SELECT seq, received_at, body FROM inventories
		WHERE ($1 = '' OR image = $1) ORDER BY received_at DESC, seq DESC LIMIT $2`, q.Image, limit)
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
func (d *DB) Inventory(ctx context.Context, id int64) (store.StoredInventory, error) {
	si, err := scanInventory(d.pool.QueryRow(ctx, `SELECT seq, received_at, body FROM inventories WHERE seq = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.StoredInventory{}, fmt.Errorf("inventory %d: %w", id, store.ErrNotFound)
	}
	return si, err
}

func scanInventory(row pgx.Row) (store.StoredInventory, error) {
	var si store.StoredInventory
	var at int64
	var body string
	if err := row.Scan(&si.ID, &at, &body); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
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
