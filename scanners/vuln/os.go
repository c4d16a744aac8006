package vuln

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/types"

	"github.com/taskguard/taskguard/scanners/analyzer"
	"github.com/taskguard/taskguard/scanners/vulndb"
)

// osMatcher matches the packages of one OS release the way trivy-db lays
// out its advisories and Trivy's detector reads them.
type osMatcher struct {
	// family and release name the OS in messages ("alpine 3.19").
	name string
	// bucket is where its advisories are ("alpine 3.19", "Red Hat").
	bucket string
	cmp    compareFunc
	// get returns the advisories for one package.
	get func(d *detector, p analyzer.Package) ([]types.Advisory, error)
	// byBinary: advisories name binary packages (rpm distributions), not
	// source packages (Debian, Ubuntu, Alpine).
	byBinary bool
}

// osFamily describes how one os-release ID is matched.
type osFamily struct {
	// release maps the os-release VERSION_ID to the bucket's release, ""
	// when the release is not one trivy-db has advisories for.
	release func(v string) string
	bucket  func(rel string) string
	cmp     compareFunc
	// eol lists each release's end of life (Trivy's dates): after it, a
	// warning says the distribution publishes no more fixes.
	eol      map[string]time.Time
	byBinary bool
	// get, when set, reads a layout other than plain advisories.
	get func(rel, bucket string) func(d *detector, p analyzer.Package) ([]types.Advisory, error)
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 23, 59, 59, 0, time.UTC) }

// rhelContentSets are the repositories Trivy assumes for a Red Hat image
// without build info (/root/buildinfo): BaseOS and AppStream (server and
// extras for RHEL 7).
var rhelContentSets = map[string][]string{
	"7": {"rhel-7-server-rpms", "rhel-7-server-extras-rpms"},
	"8": {"rhel-8-for-x86_64-baseos-rpms", "rhel-8-for-x86_64-appstream-rpms"},
	"9": {"rhel-9-for-x86_64-baseos-rpms", "rhel-9-for-x86_64-appstream-rpms"},
}

func plain(_, bucket string) func(d *detector, p analyzer.Package) ([]types.Advisory, error) {
	return func(d *detector, p analyzer.Package) ([]types.Advisory, error) {
		return d.db.Advisories(bucket, osKey(p))
	}
}

// osKey is the name a package's advisories are keyed by: the source
// package for Debian, Ubuntu and Alpine; the binary package for rpm
// distributions, prefixed with "module:stream::" for a modular one.
func osKey(p analyzer.Package) string {
	if p.Type == analyzer.TypeRPM {
		return modularName(p.Name, p.Modularity)
	}
	if p.SrcName != "" {
		return p.SrcName
	}
	return p.Name
}

// modularName turns a package of a module ("nodejs:18:9020020230608:rhel9")
// into trivy-db's key "nodejs:18::npm".
func modularName(name, label string) string {
	n := 0
	for i, r := range label {
		if r == ':' {
			n++
			if n == 2 {
				return label[:i] + "::" + name
			}
		}
	}
	return name
}

// osFamilies are the OSes whose packages are matched, by os-release ID
// (after the analyzer's aliases: rhel → redhat, almalinux → alma, amzn →
// amazon).
var osFamilies = map[string]osFamily{
	"debian": {
		release: major, bucket: func(r string) string { return "debian " + r }, cmp: compareDeb,
		eol: map[string]time.Time{"7": date(2018, 5, 31), "8": date(2020, 6, 30), "9": date(2022, 6, 30), "10": date(2024, 6, 30), "11": date(2026, 8, 14), "12": date(2028, 6, 10)},
	},
	"ubuntu": {
		release: func(v string) string { return v }, bucket: func(r string) string { return "ubuntu " + r }, cmp: compareDeb,
		eol: map[string]time.Time{
			"14.04": date(2022, 4, 25), "16.04": date(2021, 4, 21), "18.04": date(2023, 5, 31), "18.10": date(2019, 7, 18),
			"19.04": date(2020, 1, 18), "19.10": date(2020, 7, 17), "20.04": date(2025, 5, 31), "20.10": date(2021, 7, 22),
			"21.04": date(2022, 1, 20), "21.10": date(2022, 7, 14), "22.04": date(2027, 4, 23), "22.10": date(2023, 7, 20),
			"23.04": date(2024, 1, 20), "23.10": date(2024, 6, 30), "24.04": date(2034, 3, 31), "24.10": date(2025, 7, 9),
			"25.04": date(2026, 1, 16), "25.10": date(2026, 7, 1), "26.04": date(2031, 5, 31),
			// Expanded Security Maintenance (Ubuntu Pro's esm-infra).
			"12.04-ESM": date(2019, 4, 28), "14.04-ESM": date(2024, 4, 25), "16.04-ESM": date(2026, 4, 29),
			"18.04-ESM": date(2028, 3, 31), "20.04-ESM": date(2030, 4, 30),
		},
	},
	"alpine": {
		release: majorMinor, bucket: func(r string) string { return "alpine " + r }, cmp: compareAPK,
		eol: map[string]time.Time{
			"3.10": date(2021, 5, 1), "3.11": date(2021, 11, 1), "3.12": date(2022, 5, 1), "3.13": date(2022, 11, 1),
			"3.14": date(2023, 5, 1), "3.15": date(2023, 11, 1), "3.16": date(2024, 5, 23), "3.17": date(2024, 11, 22),
			"3.18": date(2025, 5, 9), "3.19": date(2025, 11, 1), "3.20": date(2026, 4, 1), "3.21": date(2026, 12, 5),
			"3.22": date(2027, 4, 30), "3.23": date(2027, 11, 1),
		},
	},
	"amazon": {
		// "2", "2023" or "2023.6.20241010"; "2018.03" is Amazon Linux 1.
		release: func(v string) string {
			switch m := major(strings.Fields(v + " ")[0]); m {
			case "2", "2022", "2023":
				return m
			}
			return "1"
		},
		bucket: func(r string) string { return "amazon linux " + r }, cmp: compareRPM, byBinary: true,
		eol: map[string]time.Time{"1": date(2023, 12, 31), "2": date(2026, 6, 30), "2023": date(2028, 3, 15)},
	},
	"rocky": {
		release: major, bucket: func(r string) string { return "rocky " + r }, cmp: compareRPM, byBinary: true,
		eol: map[string]time.Time{"8": date(2029, 5, 31), "9": date(2032, 5, 31), "10": date(2035, 5, 31)},
		get: func(_, bucket string) func(d *detector, p analyzer.Package) ([]types.Advisory, error) {
			return func(d *detector, p analyzer.Package) ([]types.Advisory, error) {
				return d.db.RockyAdvisories(bucket, osKey(p), p.Arch)
			}
		},
	},
	"alma": {
		release: major, bucket: func(r string) string { return "alma " + r }, cmp: compareRPM, byBinary: true,
		eol: map[string]time.Time{"8": date(2029, 3, 1), "9": date(2032, 5, 31), "10": date(2035, 5, 31)},
		get: func(_, bucket string) func(d *detector, p analyzer.Package) ([]types.Advisory, error) {
			return func(d *detector, p analyzer.Package) ([]types.Advisory, error) {
				// AlmaLinux's modular packages without a modularity label
				// cannot be told apart from the plain ones (AlmaLinux bug
				// 173): Trivy skips them, and so does this.
				if p.Modularity == "" && strings.Contains(p.Version, ".module_el") {
					d.skippedModular = append(d.skippedModular, p.Name)
					return nil, nil
				}
				return d.db.Advisories(bucket, osKey(p))
			}
		},
	},
	"redhat": redHat(map[string]time.Time{"6": date(2024, 6, 30)}),
	"centos": redHat(map[string]time.Time{"6": date(2020, 11, 30), "7": date(2024, 6, 30), "8": date(2021, 12, 31)}),
}

// redHat matches RHEL (and CentOS, as Trivy does) against the "Red Hat"
// bucket through the CPEs of the content sets the image's content manifests
// name, or of the release's default ones when it has none, and of the
// image's own builds (the NVRs of its Red Hat build Dockerfiles). Trivy
// drops the default content sets when an image has a build Dockerfile but
// no content manifest; here they stay, so that a build trivy-db does not
// know never leaves the packages unchecked.
func redHat(eol map[string]time.Time) osFamily {
	return osFamily{
		release: func(v string) string {
			if m := major(v); rhelContentSets[m] != nil {
				return m
			}
			return ""
		},
		bucket: func(string) string { return vulndb.BucketRedHat }, cmp: compareRPM, byBinary: true, eol: eol,
		get: func(rel, _ string) func(d *detector, p analyzer.Package) ([]types.Advisory, error) {
			return func(d *detector, p analyzer.Package) ([]types.Advisory, error) {
				sets := rhelContentSets[rel]
				if len(d.contentSets) > 0 {
					sets = d.contentSets
				}
				advs, err := d.db.RedHatAdvisories(osKey(p), sets, d.redHatNVRs)
				if errors.Is(err, vulndb.ErrNoRedHatCPE) {
					if !d.noRedHatCPE {
						d.noRedHatCPE = true
						d.warn("Red Hat packages were not checked: %v", err)
					}
					return nil, nil
				}
				if err != nil {
					return nil, err
				}
				return latestPerCVE(advs, p.Arch), nil
			}
		},
	}
}

// repositoryRelease is the release of the package repositories o installs
// from, as its family's buckets name it ("3.20", "edge"), or "".
func repositoryRelease(o *analyzer.OS, fam osFamily) string {
	switch {
	case o.Repository == "" || o.Family != "alpine":
		return ""
	case o.Repository == "edge":
		return "edge"
	}
	return fam.release(o.Repository)
}

// latestPerCVE keeps, per CVE, the Red Hat advisory with the latest fix
// that applies to arch (any, for noarch or advisories without arches), as
// Trivy does: an unfixed entry gives way to a fix, a fix to a later one.
func latestPerCVE(advs []types.Advisory, arch string) []types.Advisory {
	var out []types.Advisory
	idx := map[string]int{}
	for _, a := range advs {
		if len(a.Arches) > 0 && arch != "noarch" && !containsString(a.Arches, arch) {
			continue
		}
		i, ok := idx[a.VulnerabilityID]
		if !ok {
			idx[a.VulnerabilityID] = len(out)
			out = append(out, a)
			continue
		}
		if out[i].FixedVersion == "" && a.FixedVersion != "" {
			out[i] = a
		} else if c, _ := compareRPM(out[i].FixedVersion, a.FixedVersion); c < 0 && out[i].FixedVersion != "" {
			out[i] = a
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// osMatcherFor returns the matcher of os, or nil and the reason it has none.
func (d *detector) osMatcherFor(o *analyzer.OS, now time.Time) (*osMatcher, string) {
	fam, ok := osFamilies[o.Family]
	if !ok {
		if b, ok := osBuckets[o.Family]; ok && osComparers[o.Family] != nil {
			// Other families trivy-db knows (Wolfi, Chainguard, Oracle),
			// matched on plain advisories.
			bucket := b(o.Name)
			if !containsString(d.buckets, bucket) {
				return nil, fmt.Sprintf("the vulnerability DB has no advisories for %s %s (bucket %q): its packages were not checked", o.Family, o.Name, bucket)
			}
			return &osMatcher{name: o.Family + " " + o.Name, bucket: bucket, cmp: osComparers[o.Family],
				byBinary: o.Family == "oracle", get: plain("", bucket)}, ""
		}
		return nil, fmt.Sprintf("OS %s %s is not supported: its packages were not checked", o.Family, o.Name)
	}
	rel := fam.release(o.Name)
	name := o.Family + " " + o.Name
	if rel == "" {
		return nil, fmt.Sprintf("OS %s is not supported (no advisories for this release): its packages were not checked", name)
	}
	if o.Family == "ubuntu" && d.ubuntuESM {
		rel, name = d.ubuntuESMRelease(fam, rel, name, now)
	}
	osRel, osName := rel, name
	if repo := repositoryRelease(o, fam); repo != "" && repo != rel {
		// The packages come from the repositories' release (Trivy prefers
		// it too): its advisories describe them.
		if repo != "edge" {
			d.warn("OS %s installs from the %s %s package repositories (/etc/apk/repositories): mixing releases is unsupported by the distribution; its packages were matched against %s %s's advisories",
				name, o.Family, repo, o.Family, repo)
		}
		rel, name = repo, name+" (repository "+repo+")"
	}
	bucket := fam.bucket(rel)
	if !containsString(d.buckets, bucket) {
		return nil, fmt.Sprintf("the vulnerability DB has no advisories for %s (bucket %q): its packages were not checked", name, bucket)
	}
	// The end of life is the OS's own release's, as Trivy's.
	if end, ok := fam.eol[osRel]; ok && now.After(end) {
		d.warn("OS %s reached its end of life on %s: no more fixes are published for it, findings may be missing", osName, end.Format("2006-01-02"))
	}
	get := fam.get
	if get == nil {
		get = plain
	}
	return &osMatcher{name: name, bucket: bucket, cmp: fam.cmp, byBinary: fam.byBinary, get: get(rel, bucket)}, ""
}

// ubuntuESMRelease picks the advisories of an Ubuntu with ESM enabled, as
// Trivy does: the release's own while its standard support lasts, then its
// ESM advisories ("20.04-ESM"). When the DB has none for the release, the
// standard ones are used with a warning: the ESM fixes are unknown to it.
func (d *detector) ubuntuESMRelease(fam osFamily, rel, name string, now time.Time) (string, string) {
	if end, ok := fam.eol[rel]; !ok || !now.After(end) {
		return rel, name
	}
	esm := rel + "-ESM"
	if !containsString(d.buckets, fam.bucket(esm)) {
		d.warn("ESM is enabled in the image (%s) but the vulnerability DB has no ESM advisories for %s (bucket %q): matched against the standard release's advisories, which do not know the ESM fixes",
			"var/lib/ubuntu-advantage/status.json", name, fam.bucket(esm))
		return rel, name
	}
	return esm, name + " (ESM)"
}

// match checks one package against its OS's advisories.
func (m *osMatcher) match(d *detector, p analyzer.Package) error {
	installed := p.SrcVersion
	if installed == "" || m.byBinary || p.Type == analyzer.TypeRPM {
		installed = p.Version
	}
	advs, err := m.get(d, p)
	if err != nil {
		return err
	}
	for _, adv := range advs {
		status := StatusFixed
		if adv.FixedVersion == "" {
			status = statusName(adv.Status)
		} else {
			c, err := m.cmp(installed, adv.FixedVersion)
			if err != nil {
				d.warn("%s %s: %s: %v", p.Name, p.Version, adv.VulnerabilityID, err)
				continue
			}
			if c >= 0 {
				continue
			}
		}
		if err := d.add(p, adv, adv.FixedVersion, status); err != nil {
			return err
		}
	}
	return nil
}
