package vuln

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/types"

	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// Status of a finding.
const (
	StatusFixed    = "fixed"
	StatusAffected = "affected"
)

// Finding is one vulnerability in one installed package.
type Finding struct {
	VulnerabilityID  string           `json:"vulnerabilityID"`
	VendorIDs        []string         `json:"vendorIDs,omitempty"`
	PkgType          string           `json:"pkgType"`
	PkgName          string           `json:"pkgName"`
	SrcName          string           `json:"srcName,omitempty"`
	InstalledVersion string           `json:"installedVersion"`
	FixedVersion     string           `json:"fixedVersion,omitempty"`
	Status           string           `json:"status"`
	Severity         string           `json:"severity"`
	SeveritySource   string           `json:"severitySource,omitempty"`
	CVSS             types.VendorCVSS `json:"cvss,omitempty"`
	Title            string           `json:"title,omitempty"`
	Description      string           `json:"description,omitempty"`
	PrimaryURL       string           `json:"primaryURL,omitempty"`
	References       []string         `json:"references,omitempty"`
	// PublishedDate is when the advisory was published, when the DB knows.
	PublishedDate *time.Time        `json:"publishedDate,omitempty"`
	DataSource    string            `json:"dataSource,omitempty"`
	Location      analyzer.Location `json:"location"`
}

// Result is the outcome of matching an inventory.
type Result struct {
	Findings []Finding
	// Warnings name what could not be checked (an unsupported OS, a version
	// that does not parse); they mean findings may be missing.
	Warnings []string
}

// osBuckets names the DB bucket of the OS families not in osFamilies,
// matched on plain advisories.
var osBuckets = map[string]func(release string) string{
	"wolfi":      func(string) string { return "wolfi" },
	"chainguard": func(string) string { return "chainguard" },
	"oracle":     func(r string) string { return "Oracle Linux " + major(r) },
}

func major(r string) string {
	m, _, _ := strings.Cut(r, ".")
	return m
}

func majorMinor(r string) string {
	parts := strings.SplitN(r, ".", 3)
	if len(parts) < 2 {
		return r
	}
	return parts[0] + "." + parts[1]
}

// osPackageTypes are the package types matched against the OS bucket.
var osPackageTypes = map[string]bool{
	analyzer.TypeDpkg: true,
	analyzer.TypeAPK:  true,
	analyzer.TypeRPM:  true,
}

// Detect matches every package of inv against db.
func Detect(ctx context.Context, db *vulndb.DB, inv *analyzer.Inventory, logger *slog.Logger) (*Result, error) {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "vuln")
	buckets, err := db.Buckets()
	if err != nil {
		return nil, err
	}
	d := &detector{db: db, buckets: buckets, res: &Result{}, seen: map[string]bool{}, logger: logger, contentSets: inv.RedHatContentSets, redHatNVRs: inv.RedHatNVRs, ubuntuESM: inv.UbuntuESM}
	var osm *osMatcher
	if inv.OS != nil {
		var why string
		if osm, why = d.osMatcherFor(inv.OS, time.Now()); osm == nil {
			d.warn("%s", why)
		}
	}
	warnedUnknown := map[string]bool{}
	var thirdParty []string
	for _, p := range inv.Packages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch {
		case osPackageTypes[p.Type]:
			if osm == nil {
				if inv.OS == nil && !warnedUnknown[p.Type] {
					warnedUnknown[p.Type] = true
					d.warn("%s packages found but no OS release: they were not checked", p.Type)
				}
				continue
			}
			if p.ThirdParty {
				thirdParty = append(thirdParty, p.Name)
				continue
			}
			if err := osm.match(d, p); err != nil {
				return nil, err
			}
		default:
			eco, ok := langComparers[p.Type]
			if !ok {
				if !warnedUnknown[p.Type] {
					warnedUnknown[p.Type] = true
					d.warn("%s packages are not matched yet", p.Type)
				}
				continue
			}
			if err := d.langPackage(eco, p); err != nil {
				return nil, err
			}
		}
	}
	if len(thirdParty) > 0 {
		d.warn("%d OS packages from outside the distribution (third-party repositories) were not matched against %s's advisories: %s",
			len(thirdParty), osm.name, strings.Join(thirdParty, ", "))
	}
	if len(d.skippedModular) > 0 {
		d.warn("%d AlmaLinux modular packages without a modularity label were not checked (their advisories cannot be told apart, AlmaLinux bug 173): %s",
			len(d.skippedModular), strings.Join(d.skippedModular, ", "))
	}
	SortFindings(d.res.Findings)
	return d.res, nil
}

type detector struct {
	db      *vulndb.DB
	buckets []string
	res     *Result
	seen    map[string]bool
	logger  *slog.Logger
	// skippedModular lists AlmaLinux modular packages left unchecked.
	skippedModular []string
	// noRedHatCPE is set once the DB was found to map no content set.
	noRedHatCPE bool
	// contentSets are the Red Hat repositories the image's content
	// manifests name; nil means the release's defaults.
	contentSets []string
	// redHatNVRs are the image's Red Hat builds ("ubi8-container-8.3-227-x86_64").
	redHatNVRs []string
	// ubuntuESM: the image is an Ubuntu with ESM (esm-infra) enabled.
	ubuntuESM bool
}

func (d *detector) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.logger.Warn(msg)
	d.res.Warnings = append(d.res.Warnings, msg)
}

func statusName(s types.Status) string {
	switch s {
	case types.StatusUnknown, types.StatusAffected, types.StatusUnderInvestigation:
		return StatusAffected
	}
	return s.String()
}

func (d *detector) langPackage(eco langEcosystem, p analyzer.Package) error {
	key := p.Name
	if eco.normalize != nil {
		key = eco.normalize(key)
	}
	keys := []string{key}
	if eco.alternate != nil && eco.alternate(p.Name) != key {
		keys = append(keys, eco.alternate(p.Name))
	}
	for _, bucket := range d.buckets {
		if !strings.HasPrefix(bucket, eco.prefix) {
			continue
		}
		var advs []types.Advisory
		for _, k := range keys {
			a, err := d.db.Advisories(bucket, k)
			if err != nil {
				return err
			}
			advs = append(advs, a...)
		}
		for _, adv := range advs {
			vulnerable, err := isVulnerable(eco.match, p.Version, adv)
			if err != nil {
				d.warn("%s %s: %s: %v", p.Name, p.Version, adv.VulnerabilityID, err)
				continue
			}
			if !vulnerable {
				continue
			}
			fixed := fixedVersions(adv)
			status := StatusFixed
			if fixed == "" {
				status = StatusAffected
			}
			if err := d.add(p, adv, fixed, status); err != nil {
				return err
			}
		}
	}
	return nil
}

// isVulnerable applies an advisory's version ranges the way trivy does:
// vulnerable ranges first, then patched and unaffected ones.
func isVulnerable(match matchFunc, version string, adv types.Advisory) (bool, error) {
	matched := false
	if len(adv.VulnerableVersions) > 0 {
		ok, err := match(version, adv.VulnerableVersions)
		if err != nil || !ok {
			return false, err
		}
		matched = true
	}
	secure := append(append([]string(nil), adv.PatchedVersions...), adv.UnaffectedVersions...)
	if len(secure) == 0 {
		return matched, nil
	}
	ok, err := match(version, secure)
	if err != nil {
		return false, err
	}
	return !ok, nil
}

// fixedVersions lists the versions that fix an advisory.
func fixedVersions(adv types.Advisory) string {
	var out []string
	add := func(v string) {
		for _, x := range out {
			if x == v {
				return
			}
		}
		out = append(out, v)
	}
	if len(adv.PatchedVersions) > 0 {
		for _, v := range adv.PatchedVersions {
			add(v)
		}
		return strings.Join(out, ", ")
	}
	for _, r := range adv.VulnerableVersions {
		for _, c := range strings.Split(r, ",") {
			c = strings.TrimSpace(c)
			if strings.HasPrefix(c, "<") && !strings.HasPrefix(c, "<=") {
				add(strings.TrimSpace(strings.TrimPrefix(c, "<")))
			}
		}
	}
	return strings.Join(out, ", ")
}

func (d *detector) add(p analyzer.Package, adv types.Advisory, fixed, status string) error {
	key := strings.Join([]string{adv.VulnerabilityID, p.Type, p.Name, p.Version, p.Location.Layer, p.Location.Path}, "\x00")
	if d.seen[key] {
		return nil
	}
	d.seen[key] = true
	f := Finding{
		VulnerabilityID:  adv.VulnerabilityID,
		VendorIDs:        adv.VendorIDs,
		PkgType:          p.Type,
		PkgName:          p.Name,
		InstalledVersion: p.Version,
		FixedVersion:     fixed,
		Status:           status,
		Severity:         types.SeverityUnknown.String(),
		Location:         p.Location,
	}
	if p.SrcName != "" && p.SrcName != p.Name {
		f.SrcName = p.SrcName
	}
	var source types.SourceID
	if adv.DataSource != nil {
		source = adv.DataSource.ID
		f.DataSource = adv.DataSource.Name
	}
	v, ok, err := d.db.Vulnerability(adv.VulnerabilityID)
	if err != nil {
		return err
	}
	if ok {
		f.Title, f.Description, f.References, f.CVSS = v.Title, v.Description, v.References, v.CVSS
		f.PublishedDate = v.PublishedDate
	}
	f.Severity, f.SeveritySource = severity(source, adv, v)
	f.PrimaryURL = primaryURL(adv.VulnerabilityID, f.References)
	d.res.Findings = append(d.res.Findings, f)
	return nil
}

// severity picks the vendor's severity first, then the advisory's own, then
// NVD's, then the DB's generic one.
func severity(source types.SourceID, adv types.Advisory, v types.Vulnerability) (string, string) {
	if s, ok := v.VendorSeverity[source]; ok && source != "" {
		return s.String(), string(source)
	}
	if adv.Severity != types.SeverityUnknown {
		return adv.Severity.String(), string(source)
	}
	if s, ok := v.VendorSeverity["nvd"]; ok {
		return s.String(), "nvd"
	}
	return types.SeverityUnknown.String(), ""
}

func primaryURL(id string, refs []string) string {
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return "https://nvd.nist.gov/vuln/detail/" + id
	case strings.HasPrefix(id, "GO-"):
		return "https://pkg.go.dev/vuln/" + id
	case strings.HasPrefix(id, "GHSA-"):
		return "https://github.com/advisories/" + id
	}
	if len(refs) > 0 {
		return refs[0]
	}
	return ""
}

// SortFindings orders findings by package type, name, installed version,
// vulnerability ID and location.
func SortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		for _, c := range [][2]string{
			{a.PkgType, b.PkgType}, {a.PkgName, b.PkgName}, {a.InstalledVersion, b.InstalledVersion},
			{a.VulnerabilityID, b.VulnerabilityID}, {a.Location.Path, b.Location.Path},
		} {
			if c[0] != c[1] {
				return c[0] < c[1]
			}
		}
		return false
	})
}
