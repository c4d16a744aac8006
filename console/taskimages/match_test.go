package taskimages

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// corpusDB builds the shared advisories into a temporary DB directory.
func corpusDB(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := vulndb.Build(context.Background(), dir, filepath.Join(testenv.SharedDir(t), "corpora", "advisories"), time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Versions below are those of the corpus's Debian facts (perl-base has
// fixed CVEs; base-files has none).
func stored(id int64, family, image string) store.StoredInventory {
	return store.StoredInventory{ID: id, Inventory: api.Inventory{
		TaskFamily: family, Container: "app", Image: image, Hash: "sha256:x",
		OS: &api.InventoryOS{Family: "debian", Name: "12.5"},
		Packages: []api.InventoryPackage{
			{Type: "dpkg", Name: "perl-base", Version: "5.36.0-7+deb12u3", SrcName: "perl", SrcVersion: "5.36.0-7+deb12u3"},
			{Type: "dpkg", Name: "base-files", Version: "12.4+deb12u5"},
		},
	}}
}

func TestMatchFilters(t *testing.T) {
	m := &Matcher{Dir: corpusDB(t)}
	invs := []store.StoredInventory{stored(1, "shop-web", "shop/web:1"), stored(2, "bank-api", "bank/api:3")}
	all, err := m.Match(context.Background(), invs, Filter{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Images) != 2 || len(all.Images[0].Vulnerabilities) == 0 || all.DBUpdatedAt.IsZero() {
		t.Fatalf("unfiltered: %+v", all)
	}
	perlCVE := all.Images[0].Vulnerabilities[0].VulnerabilityID
	tests := []struct {
		name   string
		f      Filter
		images int
	}{
		{"task glob", Filter{Task: "shop-*"}, 1},
		{"image glob", Filter{Image: "bank/*"}, 1},
		{"cve", Filter{CVE: perlCVE}, 2},
		{"unknown cve", Filter{CVE: "CVE-1999-0000"}, 0},
		{"fixed", Filter{Fixed: true}, 2},
		{"critical only", Filter{Severity: "CRITICAL"}, 0},
		{"task and cve", Filter{Task: "bank-*", CVE: perlCVE}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.Match(context.Background(), invs, tt.f, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Images) != tt.images {
				t.Errorf("%d images, want %d", len(got.Images), tt.images)
			}
			for _, im := range got.Images {
				if len(im.Vulnerabilities) != 0 {
					t.Error("a list (not detail) carries vulnerabilities")
				}
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	tests := []struct {
		name string
		f    Filter
		ok   bool
	}{
		{"empty", Filter{}, true},
		{"severity", Filter{Severity: "high"}, true},
		{"bad severity", Filter{Severity: "urgent"}, false},
		{"bad glob", Filter{Task: "shop-["}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.f.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestUpdaterOffline: offline, the updater keeps the present DB usable and
// stops with its context.
func TestUpdaterOffline(t *testing.T) {
	m := &Matcher{Dir: corpusDB(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		(&Updater{Matcher: m, Interval: 10 * time.Millisecond, Options: vulndb.UpdateOptions{Offline: true}}).Run(ctx)
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	got, err := m.Match(context.Background(), []store.StoredInventory{stored(1, "f", "i")}, Filter{}, false)
	if err != nil || len(got.Images) != 1 || len(got.Images[0].Warnings) != 0 {
		t.Errorf("match during offline updates: %+v, %v", got, err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("updater did not stop")
	}
}

// TestMatchGivesUpWaitingForDB: while another holder of this process has
// the DB open (the one trivy-db handle), a match whose request has ended
// returns at once, its images unmatched with a warning that says why,
// instead of waiting for the holder; once the holder closes, it matches.
func TestMatchGivesUpWaitingForDB(t *testing.T) {
	m := &Matcher{Dir: corpusDB(t)}
	invs := []store.StoredInventory{stored(1, "shop-web", "shop/web:1")}
	held, err := vulndb.Open(m.Dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	var got api.TaskImageList
	go func() {
		defer close(done)
		got, _ = m.Match(ctx, invs, Filter{}, true)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute): // a hang bound, not a timing
		held.Close()
		<-done
		t.Fatal("Match waited for the DB another holder has open after its context ended")
	}
	if len(got.Images) != 1 || len(got.Images[0].Warnings) == 0 ||
		!strings.Contains(got.Images[0].Warnings[0], context.Canceled.Error()) {
		t.Errorf("images %+v: want one unmatched image whose warning names the ended context", got.Images)
	}
	held.Close()
	all, err := m.Match(context.Background(), invs, Filter{}, true)
	if err != nil || len(all.Images) != 1 || len(all.Images[0].Vulnerabilities) == 0 {
		t.Fatalf("after the holder closed: %+v, %v", all, err)
	}
}
