package analyzer

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
	// go-rpmdb reads rpm's SQLite database through database/sql's "sqlite"
	// driver, which modernc.org/sqlite provides without cgo.
	_ "modernc.org/sqlite"
)

// rpmDB reads rpm's package database in any of its three formats: Berkeley
// DB (Packages), NDB (Packages.db) and SQLite (rpmdb.sqlite), under
// var/lib/rpm or usr/lib/sysimage/rpm.
type rpmDB struct{}

func (rpmDB) Type() string { return TypeRPM }
func (rpmDB) Version() int { return 3 }

func (rpmDB) Required(p string, _ fs.FileInfo) bool {
	switch path.Dir(p) {
	case "var/lib/rpm", "usr/lib/sysimage/rpm":
	default:
		return false
	}
	switch path.Base(p) {
	case "Packages", "Packages.db", "rpmdb.sqlite":
		return true
	}
	return false
}

func (rpmDB) Analyze(_ context.Context, in Input) (res *Result, err error) {
	// go-rpmdb needs a file; the content is only in memory.
	f, err := os.CreateTemp("", "taskguard-rpmdb-*")
	if err != nil {
		return nil, fmt.Errorf("rpm %s: %w", in.Path, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(in.Content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("rpm %s: %w", in.Path, err)
	}
	pkgs, owned, err := readRPMDB(f.Name())
	if err != nil {
		return nil, fmt.Errorf("rpm %s: %w", in.Path, err)
	}
	for i := range pkgs {
		pkgs[i].Location = Location{Layer: in.Layer, Path: in.Path}
	}
	return &Result{Packages: pkgs, OwnedFiles: owned}, nil
}

// readRPMDB lists the packages of the rpm database file at p and the files
// they own. A panic in the parser (hostile input) becomes an error.
func readRPMDB(p string) (pkgs []Package, owned []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			pkgs, owned, err = nil, nil, fmt.Errorf("malformed rpm database: %v", r)
		}
	}()
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, fmt.Errorf("open rpm database: %w", err)
	}
	if err := checkRPMDB(p, b); err != nil {
		return nil, nil, fmt.Errorf("malformed rpm database: %w", err)
	}
	db, err := rpmdb.Open(p)
	if err != nil {
		return nil, nil, fmt.Errorf("open rpm database: %w", err)
	}
	defer db.Close()
	infos, err := db.ListPackages()
	if err != nil {
		return nil, nil, fmt.Errorf("list rpm packages: %w", err)
	}
	for _, pi := range infos {
		if pi.Name == "gpg-pubkey" {
			continue
		}
		epoch := 0
		if pi.Epoch != nil {
			epoch = *pi.Epoch
		}
		pkg := Package{Type: TypeRPM, Name: pi.Name, Version: evr(epoch, pi.Version, pi.Release),
			Arch: pi.Arch, Modularity: pi.Modularitylabel, ThirdParty: !rpmFromOSVendor(pi.Vendor, pi.Release)}
		if name, ver, rel, ok := splitSourceRPM(pi.SourceRpm); ok {
			pkg.SrcName, pkg.SrcVersion = name, evr(epoch, ver, rel)
		}
		pkgs = append(pkgs, pkg)
		if pkg.ThirdParty {
			// A vendor's package: what it bundles is scanned.
			continue
		}
		files, err := pi.InstalledFileNames()
		if err != nil {
			return nil, nil, fmt.Errorf("rpm package %s: file names: %w", pi.Name, err)
		}
		for _, f := range files {
			if o := ownedPath(f); o != "" {
				owned = append(owned, o)
			}
		}
	}
	return pkgs, owned, nil
}

func evr(epoch int, version, release string) string {
	v := version
	if release != "" {
		v += "-" + release
	}
	if epoch > 0 {
		v = strconv.Itoa(epoch) + ":" + v
	}
	return v
}

// splitSourceRPM splits "name-version-release.src.rpm".
func splitSourceRPM(s string) (name, version, release string, ok bool) {
	s, ok = strings.CutSuffix(s, ".src.rpm")
	if !ok {
		return "", "", "", false
	}
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return "", "", "", false
	}
	s, release = s[:i], s[i+1:]
	j := strings.LastIndexByte(s, '-')
	if j <= 0 {
		return "", "", "", false
	}
	return s[:j], s[j+1:], release, true
}

// rpmOSVendors are the Vendor prefixes of distributions' own packages
// (Trivy's list).
var rpmOSVendors = []string{
	"Amazon Linux", "Amazon.com", "CentOS", "Fedora Project", "Oracle America", "Red Hat",
	"AlmaLinux", "CloudLinux", "VMware", "SUSE", "openSUSE", "Microsoft Corporation", "Rocky",
}

// rpmFromOSVendor reports whether an rpm package is the distribution's:
// its Vendor is a distribution's, or, with no Vendor, it is Amazon
// Linux's (whose packages may lack one). Others come from third-party
// repositories (EPEL, Docker, NodeSource).
func rpmFromOSVendor(vendor, release string) bool {
	if vendor == "" {
		return strings.Contains(release, "amzn")
	}
	for _, v := range rpmOSVendors {
		if strings.HasPrefix(vendor, v) {
			return true
		}
	}
	return false
}
