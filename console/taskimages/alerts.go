package taskimages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
)

// AlertStore is what the Alerter reads and writes: the policy, the stored
// inventories and the audit stream.
type AlertStore interface {
	Policy(ctx context.Context) (policy.Policy, error)
	InventorySource
	InsertAudits(ctx context.Context, audits []api.Audit, received time.Time) (int, error)
}

// Alerter evaluates the image rules of the policy (policy.ImageRule) over
// task containers' inventories matched against the Matcher's DB and writes
// an alert audit (kind image) per finding a rule alerts on. An audit's ID is
// derived from the task family, container, image digest and finding, so
// evaluating again never duplicates an alert.
type Alerter struct {
	Matcher *Matcher
	Store   AlertStore
	// Now is the clock exceptions expire by; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// EvaluateAll evaluates every stored inventory (after a DB update) and
// returns how many new alerts were written. The inventories are read and
// evaluated one at a time (within the Matcher's match slots), never all held.
func (a *Alerter) EvaluateAll(ctx context.Context) (int, error) {
	p, err := a.Store.Policy(ctx)
	if err != nil {
		return 0, fmt.Errorf("image alerts: read policy: %w", err)
	}
	if len(p.Images) == 0 {
		return 0, nil
	}
	heads, err := a.Store.InventoryHeads(ctx, store.InventoryQuery{})
	if err != nil {
		return 0, fmt.Errorf("image alerts: list inventories: %w", err)
	}
	now := time.Now().UTC()
	if a.Now != nil {
		now = a.Now().UTC()
	}
	// The lock before a match slot, as List takes them.
	a.Matcher.mu.RLock()
	defer a.Matcher.mu.RUnlock()
	mt := a.Matcher.open(ctx)
	defer mt.close()
	total := 0
	for _, h := range heads {
		n, _, err := eachStored(ctx, a.Store, h.ID, func(si store.StoredInventory) (int, bool, error) {
			ti, _, err := mt.match(ctx, si, Filter{}, true)
			if err != nil {
				return 0, false, fmt.Errorf("image alerts: %w", err)
			}
			return a.insert(ctx, Alerts(&p, ti, now), now)
		})
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// insert stores alert audits, counting the new ones.
func (a *Alerter) insert(ctx context.Context, audits []api.Audit, now time.Time) (int, bool, error) {
	if len(audits) == 0 {
		return 0, true, nil
	}
	n, err := a.Store.InsertAudits(ctx, audits, now)
	if err != nil {
		return 0, false, fmt.Errorf("image alerts: store %d audits: %w", len(audits), err)
	}
	if n > 0 && a.Logger != nil {
		a.Logger.Info("image alerts written", "new", n, "evaluated", len(audits))
	}
	return n, true, nil
}

// Evaluate evaluates invs and returns how many new alerts were written.
// Without a DB only compliance findings are evaluated.
func (a *Alerter) Evaluate(ctx context.Context, invs []store.StoredInventory) (int, error) {
	p, err := a.Store.Policy(ctx)
	if err != nil {
		return 0, fmt.Errorf("image alerts: read policy: %w", err)
	}
	if len(p.Images) == 0 || len(invs) == 0 {
		return 0, nil
	}
	now := time.Now().UTC()
	if a.Now != nil {
		now = a.Now().UTC()
	}
	list, err := a.Matcher.Match(ctx, invs, Filter{}, true)
	if err != nil {
		return 0, fmt.Errorf("image alerts: %w", err)
	}
	var audits []api.Audit
	for _, ti := range list.Images {
		audits = append(audits, Alerts(&p, ti, now)...)
	}
	if len(audits) == 0 {
		return 0, nil
	}
	n, err := a.Store.InsertAudits(ctx, audits, now)
	if err != nil {
		return 0, fmt.Errorf("image alerts: store %d audits: %w", len(audits), err)
	}
	if n > 0 && a.Logger != nil {
		a.Logger.Info("image alerts written", "new", n, "evaluated", len(audits))
	}
	return n, nil
}

// Alerts returns the alert audits the first image rule of p matching ti
// decides at now, or none when no rule matches.
func Alerts(p *policy.Policy, ti api.TaskImage, now time.Time) []api.Audit {
	id := policy.Identity{TaskFamily: ti.TaskFamily, Container: ti.Container, Image: ti.Image}
	rule := p.ImagesFor(id)
	if rule == nil {
		return nil
	}
	image := ti.Image
	if image == "" {
		image = ti.ImageDigest
	}
	where := fmt.Sprintf("of image %s in task family %s container %s", image, ti.TaskFamily, ti.Container)
	audit := func(key, severity, msg string) api.Audit {
		return api.Audit{
			ID: alertID(ti, key), Time: now, TaskFamily: ti.TaskFamily, TaskID: ti.TaskID, Container: ti.Container,
			Image: ti.Image, Kind: api.AuditImage, Effect: policy.EffectAlert, Rule: rule.Name,
			Severity: strings.ToLower(severity), Message: msg,
		}
	}
	var out []api.Audit
	for _, v := range ti.Vulnerabilities {
		verdict := rule.DecideVulnerability(policy.VulnFinding{ID: v.VulnerabilityID, Package: v.PkgName, Severity: v.Severity, FixedVersion: v.FixedVersion}, now)
		if verdict.Action != policy.ActionAlert {
			continue
		}
		fix := "no fix yet"
		if v.FixedVersion != "" {
			fix = "fixed in " + v.FixedVersion
		}
		out = append(out, audit("vuln|"+v.VulnerabilityID+"|"+v.PkgType+"|"+v.PkgName+"|"+v.InstalledVersion, v.Severity,
			fmt.Sprintf("%s (%s) in %s %s %s: %s", v.VulnerabilityID, strings.ToUpper(v.Severity), v.PkgName, v.InstalledVersion, where, fix)))
	}
	for _, c := range ti.ComplianceFindings {
		verdict := rule.DecideCompliance(policy.ComplianceFinding{CheckID: c.CheckID, Severity: c.Severity}, now)
		if verdict.Action != policy.ActionAlert {
			continue
		}
		out = append(out, audit("check|"+c.CheckID+"|"+c.Target, c.Severity,
			fmt.Sprintf("%s (%s) %s %s: %s", c.CheckID, strings.ToUpper(c.Severity), c.Title, where, c.Message)))
	}
	return out
}

// AlertIDPrefix starts the ID of every image alert; defenders' audits may
// not use it.
const AlertIDPrefix = "image-"

// alertID is stable per task family, container, image (digest when known)
// and finding.
func alertID(ti api.TaskImage, key string) string {
	image := ti.ImageDigest
	if image == "" {
		image = ti.Image
	}
	h := sha256.Sum256([]byte(strings.Join([]string{ti.TaskFamily, ti.Container, image, key}, "\x00")))
	return AlertIDPrefix + hex.EncodeToString(h[:16])
}
