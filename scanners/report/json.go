package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// WriteJSON writes r as indented JSON (schema: docs/ci-report-json.md).
func WriteJSON(_ context.Context, w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}
