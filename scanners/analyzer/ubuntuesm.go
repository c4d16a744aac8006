package analyzer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
)

// ubuntuESM reads Ubuntu Pro's status file: when its esm-infra service is
// enabled, the image gets Expanded Security Maintenance fixes past the
// release's standard end of life, and its packages are matched against the
// release's ESM advisories (trivy-db's "ubuntu 20.04-ESM" buckets), as
// Trivy does.
type ubuntuESM struct{}

// TypeUbuntuESM names the analyzer of Ubuntu Pro's status file.
const TypeUbuntuESM = "ubuntu-esm"

const pathUbuntuAdvantage = "var/lib/ubuntu-advantage/status.json"

func (ubuntuESM) Type() string { return TypeUbuntuESM }
func (ubuntuESM) Version() int { return 1 }

func (ubuntuESM) Required(p string, _ fs.FileInfo) bool { return p == pathUbuntuAdvantage }

func (ubuntuESM) Analyze(_ context.Context, in Input) (*Result, error) {
	var st struct {
		Services []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"services"`
	}
	if err := json.NewDecoder(bytes.NewReader(in.Content)).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", pathUbuntuAdvantage, err)
	}
	for _, s := range st.Services {
		if s.Name == "esm-infra" && s.Status == "enabled" {
			return &Result{UbuntuESM: true}, nil
		}
	}
	return nil, nil
}
