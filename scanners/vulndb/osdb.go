package vulndb

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/types"
)

// Bucket names of the OS layouts trivy-db uses beyond "<family> <release>".
const (
	// BucketRedHat holds Red Hat's advisories for every RHEL release; an
	// entry says which CPEs (products/repositories) it applies to.
	BucketRedHat = "Red Hat"
	// BucketRedHatCPE maps repositories (content sets) and build NVRs to
	// indices of the CPE list the entries of BucketRedHat refer to.
	BucketRedHatCPE = "Red Hat CPE"
)

// ErrNoRedHatCPE is returned by RedHatAdvisories when the DB maps none of
// the content sets to a CPE.
var ErrNoRedHatCPE = errors.New("no Red Hat CPE in the vulnerability DB")

// RockyAdvisories returns the advisories in bucket ("rocky 9") for pkg
// ("name" or "module:stream::name") built for arch, the way trivy-db reads
// them: an advisory with per-architecture entries yields the entries for
// arch (all of them when arch is empty); one without entries yields its
// own fixed version.
func (d *DB) RockyAdvisories(bucket, pkg, arch string) ([]types.Advisory, error) {
	raw, err := trivydb.Config{}.ForEachAdvisory([]string{bucket}, pkg)
	if err != nil {
		return nil, fmt.Errorf("advisories for %s in %q: %w", pkg, bucket, err)
	}
	var out []types.Advisory
	for id, v := range raw {
		var adv types.Advisories
		if err := json.Unmarshal(v.Content, &adv); err != nil {
			return nil, fmt.Errorf("advisory %s for %s in %q: %w", id, pkg, bucket, err)
		}
		src := v.Source
		if len(adv.Entries) == 0 {
			out = append(out, types.Advisory{VulnerabilityID: id, FixedVersion: adv.FixedVersion, DataSource: &src})
			continue
		}
		for _, e := range adv.Entries {
			// An unknown arch (an SBOM without it) takes every entry.
			if arch != "" && !slices.Contains(e.Arches, arch) {
				continue
			}
			e.VulnerabilityID, e.DataSource = id, &src
			out = append(out, e)
		}
	}
	sortAdvisories(out)
	return out, nil
}

// redHatEntry is one entry of a BucketRedHat advisory (trivy-db's
// redhat-oval Entry): the fix, the CVEs it covers and the CPE indices it
// applies to.
type redHatEntry struct {
	FixedVersion string `json:",omitempty"`
	Cves         []redHatCVE
	Arches       []string `json:",omitempty"`
	Status       int      `json:",omitempty"`
	Affected     []int    `json:",omitempty"`
}

type redHatCVE struct {
	ID       string         `json:",omitempty"`
	Severity types.Severity `json:",omitempty"`
}

type redHatAdvisory struct {
	Entries []redHatEntry `json:",omitempty"`
}

// RedHatAdvisories returns the advisories in BucketRedHat for pkg whose
// entries apply to a CPE that one of the content sets (repositories such
// as "rhel-9-for-x86_64-baseos-rpms") or one of the builds (image NVRs
// such as "ubi8-container-8.3-227-x86_64") maps to, as trivy-db's
// redhat-oval Get does: one advisory per CVE of an entry, the RHSA (when
// the advisory is keyed by one) in VendorIDs. No CPE for any content set
// or build is an error.
func (d *DB) RedHatAdvisories(pkg string, contentSets, nvrs []string) ([]types.Advisory, error) {
	cfg := trivydb.Config{}
	var cpes []int
	for _, cs := range contentSets {
		idx, err := cfg.RedHatRepoToCPEs(cs)
		if err != nil {
			return nil, fmt.Errorf("the Red Hat CPEs of %s: %w", cs, err)
		}
		cpes = append(cpes, idx...)
	}
	for _, nvr := range nvrs {
		idx, err := cfg.RedHatNVRToCPEs(nvr)
		if err != nil {
			return nil, fmt.Errorf("the Red Hat CPEs of the build %s: %w", nvr, err)
		}
		cpes = append(cpes, idx...)
	}
	if len(cpes) == 0 {
		what := "the content sets " + strings.Join(contentSets, ", ")
		if len(nvrs) > 0 {
			what += " or the builds " + strings.Join(nvrs, ", ")
		}
		return nil, fmt.Errorf("%w for %s", ErrNoRedHatCPE, what)
	}
	raw, err := cfg.ForEachAdvisory([]string{BucketRedHat}, pkg)
	if err != nil {
		return nil, fmt.Errorf("advisories for %s in %q: %w", pkg, BucketRedHat, err)
	}
	var out []types.Advisory
	for id, v := range raw {
		var adv redHatAdvisory
		if err := json.Unmarshal(v.Content, &adv); err != nil {
			return nil, fmt.Errorf("advisory %s for %s in %q: %w", id, pkg, BucketRedHat, err)
		}
		src := v.Source
		for _, e := range adv.Entries {
			if !intersects(cpes, e.Affected) {
				continue
			}
			for _, c := range e.Cves {
				a := types.Advisory{Severity: c.Severity, FixedVersion: e.FixedVersion, Arches: e.Arches,
					Status: types.Status(e.Status), DataSource: &src}
				if strings.HasPrefix(id, "CVE-") {
					a.VulnerabilityID = id
				} else {
					a.VulnerabilityID, a.VendorIDs = c.ID, []string{id}
				}
				out = append(out, a)
			}
		}
	}
	sortAdvisories(out)
	return out, nil
}

func intersects(a, b []int) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func sortAdvisories(advs []types.Advisory) {
	sort.SliceStable(advs, func(i, j int) bool {
		if advs[i].VulnerabilityID != advs[j].VulnerabilityID {
			return advs[i].VulnerabilityID < advs[j].VulnerabilityID
		}
		return advs[i].FixedVersion < advs[j].FixedVersion
	})
}
