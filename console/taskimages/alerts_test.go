package taskimages

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/store/postgres"
	"github.com/taskguard/taskguard/console/store/postgres/pgtest"
	"github.com/taskguard/taskguard/console/store/sqlite"
	"github.com/taskguard/taskguard/internal/testenv"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

func imageAlerts(t *testing.T, st store.Store) []api.Audit {
	t.Helper()
	page, err := st.Audits(context.Background(), store.AuditQuery{Kinds: []api.AuditKind{api.AuditImage}, Limit: store.MaxAuditPage})
	if err != nil {
		t.Fatal(err)
	}
	return page.Audits
}

// TestAlertsFollowDBUpdates: with the real SQLite store and the real
// Updater, a DB update that adds an advisory for an installed package
// writes a new alert for the stored inventory without a new one being
// posted; evaluating again writes nothing.
func TestAlertsFollowDBUpdates(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "taskguard.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		alertsFollowDBUpdates(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		cluster := pgtest.Start(t)
		st, err := postgres.Open(context.Background(), cluster.NewDatabase(t), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		alertsFollowDBUpdates(t, st)
	})
}

func alertsFollowDBUpdates(t *testing.T, st store.Store) {
	ctx := context.Background()
	p := policy.Policy{Images: []policy.ImageRule{{Name: "all", Vulnerabilities: policy.VulnRule{AlertThreshold: "UNKNOWN"}}}}
	if _, err := st.SavePolicy(ctx, 0, p, store.PolicyChange{Actor: "test", Action: "replace images rules"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveInventory(ctx, stored(0, "shop-web", "shop/web:1")); err != nil {
		t.Fatal(err)
	}

	corpus := filepath.Join(testenv.SharedDir(t), "corpora", "advisories", "debian-bookworm")
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "debian-bookworm"), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(corpus)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(corpus, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "debian-bookworm", e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	consoleDir := filepath.Join(t.TempDir(), "db")
	if _, err := vulndb.Build(ctx, consoleDir, src, time.Now().Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	m := &Matcher{Dir: consoleDir}
	a := &Alerter{Matcher: m, Store: st}
	first, err := a.EvaluateAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := imageAlerts(t, st)
	if first == 0 || len(before) != first {
		t.Fatalf("first evaluation wrote %d, the stream holds %d; want the same, above 0", first, len(before))
	}
	if n, err := a.EvaluateAll(ctx); err != nil || n != 0 {
		t.Fatalf("evaluating again wrote %d (%v), want 0", n, err)
	}

	if err := os.WriteFile(filepath.Join(src, "debian-bookworm", "added.json"),
		[]byte(`[{"package":"base-files","source":"base-files","installed":"12.4+deb12u5","fixed":"99.0","cves":["CVE-2099-0003"]}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(t.TempDir(), "newer")
	if _, err := vulndb.Build(ctx, newer, src, time.Now()); err != nil {
		t.Fatal(err)
	}
	var updated int
	u := &Updater{Matcher: m, Options: vulndb.UpdateOptions{Repository: serveDB(t, newer)}, Updated: func(ctx context.Context) {
		n, err := a.EvaluateAll(ctx)
		if err != nil {
			t.Errorf("re-evaluate: %v", err)
		}
		updated += n
	}}
	if res, err := u.Update(ctx); err != nil || !res.Downloaded {
		t.Fatalf("update: %+v, %v", res, err)
	}
	after := imageAlerts(t, st)
	if updated != 1 || len(after) != len(before)+1 {
		t.Fatalf("after the update: %d new, %d alerts, want 1 new and %d", updated, len(after), len(before)+1)
	}
	var found bool
	for _, al := range after {
		if strings.HasPrefix(al.Message, "CVE-2099-0003 (UNKNOWN) in base-files 12.4+deb12u5 of image shop/web:1 in task family shop-web container app: fixed in 99.0") {
			found = true
		}
	}
	if !found {
		t.Errorf("no alert for the added advisory in %+v", after)
	}
}

// TestAlertsDecisions: thresholds, only-fixed, expiring exceptions and the
// Fargate compliance set decide which findings alert.
func TestAlertsDecisions(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ti := api.TaskImage{TaskFamily: "shop", Container: "web", Image: "shop/web:1", ImageDigest: "sha256:1",
		Vulnerabilities: []api.TaskVulnerability{
			{VulnerabilityID: "CVE-1", PkgName: "a", InstalledVersion: "1", FixedVersion: "2", Severity: "HIGH"},
			{VulnerabilityID: "CVE-2", PkgName: "b", InstalledVersion: "1", Severity: "CRITICAL"},
			{VulnerabilityID: "CVE-3", PkgName: "c", InstalledVersion: "1", FixedVersion: "2", Severity: "LOW"},
		},
		ComplianceFindings: []api.ComplianceFinding{{CheckID: "TG-IMG-009", Severity: "MEDIUM"}, {CheckID: "TG-IMG-008", Severity: "LOW"}},
	}
	day := func(d int) policy.Date { return policy.Date{Time: now.AddDate(0, 0, d).Truncate(24 * time.Hour)} }
	tests := []struct {
		name string
		rule policy.ImageRule
		want []string
	}{
		{"high threshold", policy.ImageRule{Vulnerabilities: policy.VulnRule{AlertThreshold: "HIGH"}}, []string{"CVE-1", "CVE-2", "TG-IMG-009"}},
		{"only fixed", policy.ImageRule{Vulnerabilities: policy.VulnRule{AlertThreshold: "LOW", OnlyFixed: true}}, []string{"CVE-1", "CVE-3", "TG-IMG-009"}},
		{"exception", policy.ImageRule{Vulnerabilities: policy.VulnRule{AlertThreshold: "HIGH", Exceptions: []policy.Exception{{ID: "CVE-2", Reason: "r", Expires: day(0)}}}}, []string{"CVE-1", "TG-IMG-009"}},
		{"expired exception", policy.ImageRule{Vulnerabilities: policy.VulnRule{AlertThreshold: "HIGH", Exceptions: []policy.Exception{{ID: "CVE-2", Reason: "r", Expires: day(-1)}}}}, []string{"CVE-1", "CVE-2", "TG-IMG-009"}},
		{"check ignored", policy.ImageRule{Compliance: policy.ComplianceRule{Checks: map[string]policy.Action{"TG-IMG-009": policy.ActionIgnore}}}, nil},
		{"compliance off", policy.ImageRule{Compliance: policy.ComplianceRule{Default: policy.ActionIgnore}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rule.Name = "r"
			p := policy.Policy{Images: []policy.ImageRule{tt.rule}}
			var got []string
			ids := map[string]bool{}
			for _, a := range Alerts(&p, ti, now) {
				got = append(got, strings.Fields(a.Message)[0])
				if ids[a.ID] {
					t.Errorf("duplicate audit ID %s", a.ID)
				}
				ids[a.ID] = true
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("alerts %q, want %q", got, tt.want)
			}
		})
	}
	// The ID is stable across evaluations and differs per image digest.
	p := policy.Policy{Images: []policy.ImageRule{{Name: "r", Vulnerabilities: policy.VulnRule{AlertThreshold: "HIGH"}}}}
	a1, a2 := Alerts(&p, ti, now), Alerts(&p, ti, now.Add(time.Hour))
	other := ti
	other.ImageDigest = "sha256:2"
	a3 := Alerts(&p, other, now)
	if a1[0].ID != a2[0].ID || a1[0].ID == a3[0].ID {
		t.Errorf("IDs %s %s %s: want the first two equal, the third different", a1[0].ID, a2[0].ID, a3[0].ID)
	}
	// No matching rule: no alerts.
	p.Images[0].Scope.Tasks = []string{"bank-*"}
	if n := len(Alerts(&p, ti, now)); n != 0 {
		t.Errorf("out of scope: %d alerts", n)
	}
}
