package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskguard/taskguard/scanners/scantest"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenReport scans a small rootfs (the corpus's minbase Debian packages
// and lodash 4.17.20) against a DB built from the corpus, at fixed times.
func goldenReport(t *testing.T) *Report {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(advisoriesDir(t), "debian-bookworm", "rootfs-expected-debian.json"))
	if err != nil {
		t.Fatal(err)
	}
	var facts []debianFact
	if err := json.Unmarshal(raw, &facts); err != nil {
		t.Fatal(err)
	}
	var status bytes.Buffer
	for _, f := range facts {
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nSource: %s\nVersion: %s\n\n", f.Package, f.Source, f.Installed)
	}
	root := t.TempDir()
	scantest.WriteFiles(t, root, map[string][]byte{
		"etc/os-release":                       []byte("ID=debian\nVERSION_ID=\"12\"\n"),
		"var/lib/dpkg/status":                  status.Bytes(),
		"app/node_modules/lodash/package.json": []byte(`{"name":"lodash","version":"4.17.20"}`),
	})
	built := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	dbDir := t.TempDir()
	if _, err := vulndb.Build(context.Background(), dbDir, advisoriesDir(t), built); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(dbDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := Image(context.Background(), root, db, Options{
		ToolVersion: "test",
		Logger:      quiet,
		Now:         func() time.Time { return built.Add(time.Hour) },
	})
	if err != nil {
		t.Fatal(err)
	}
	rep.Artifact.Name = "rootfs"
	return rep
}

func TestWritersGolden(t *testing.T) {
	rep := goldenReport(t)
	tests := []struct {
		name   string
		golden string
		write  func(context.Context, *bytes.Buffer, *Report) error
	}{
		{"json", "report.json", func(ctx context.Context, b *bytes.Buffer, r *Report) error { return WriteJSON(ctx, b, r) }},
		{"table", "report.txt", func(ctx context.Context, b *bytes.Buffer, r *Report) error { return WriteTable(ctx, b, r) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(context.Background(), &b, rep); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", tt.name, path, b.String())
			}
		})
	}
	// The JSON round-trips into the same report.
	var b bytes.Buffer
	if err := WriteJSON(context.Background(), &b, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Summary != rep.Summary || len(back.Findings) != len(rep.Findings) || back.Summary.Total != 19 {
		t.Errorf("round trip: summary %+v vs %+v", back.Summary, rep.Summary)
	}
}

func TestSeverityThreshold(t *testing.T) {
	rep := goldenReport(t)
	tests := []struct {
		min  string
		want int
	}{
		{"critical", 0},
		{"HIGH", 1},
		{"Low", 1},
		{"unknown", rep.Summary.Total},
	}
	for _, tt := range tests {
		t.Run(tt.min, func(t *testing.T) {
			min, err := ParseSeverity(tt.min)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(rep.AtOrAbove(min)); got != tt.want {
				t.Errorf("AtOrAbove(%s) = %d findings, want %d", min, got, tt.want)
			}
		})
	}
	if _, err := ParseSeverity("severe"); err == nil {
		t.Error("ParseSeverity(severe): no error")
	}
}
