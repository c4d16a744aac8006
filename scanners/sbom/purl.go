package sbom

import (
	"fmt"
	"strings"

	packageurl "github.com/package-url/packageurl-go"

	"github.com/taskguard/taskguard/scanners/analyzer"
)

// PURL returns the package URL of p found on os (nil when unknown), or ""
// when the package cannot have one (a jar known by its file name only).
//
//	dpkg      pkg:deb/debian/libssl3@3.0.11-1~deb12u2?distro=debian-12.5&upstream=openssl
//	apk       pkg:apk/alpine/musl@1.2.4-r2?distro=3.19.1
//	rpm       pkg:rpm/rocky/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=rocky-9.3&epoch=1
//	gobinary  pkg:golang/golang.org/x/text@v0.3.5, pkg:golang/stdlib@v1.22.1
//	npm       pkg:npm/%40babel/core@7.0.0
//	python    pkg:pypi/pyyaml@6.0
//	jar       pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1 (maven too)
//	gem       pkg:gem/rack@2.2.3
//	composer  pkg:composer/guzzlehttp/guzzle@7.4.2
//	cargo     pkg:cargo/smallvec@1.6.0
//	nuget     pkg:nuget/Newtonsoft.Json@12.0.3
//
// The upstream qualifier (as Syft writes it) carries the source package
// of an OS package when it differs: "openssl", or "glibc@2.36-9" when the
// versions differ too.
func PURL(os *analyzer.OS, p analyzer.Package) string {
	var q packageurl.Qualifiers
	var typ, ns, name, version = "", "", p.Name, p.Version
	switch p.Type {
	case analyzer.TypeDpkg, analyzer.TypeAPK, analyzer.TypeRPM:
		typ = map[string]string{analyzer.TypeDpkg: packageurl.TypeDebian, analyzer.TypeAPK: packageurl.TypeApk, analyzer.TypeRPM: packageurl.TypeRPM}[p.Type]
		if os != nil {
			ns = os.Family
			if p.Type == analyzer.TypeAPK {
				q = append(q, packageurl.Qualifier{Key: "distro", Value: os.Name})
			} else {
				q = append(q, packageurl.Qualifier{Key: "distro", Value: os.Family + "-" + os.Name})
			}
		}
		if p.Type == analyzer.TypeRPM {
			if e, v, ok := strings.Cut(version, ":"); ok {
				version = v
				q = append(q, packageurl.Qualifier{Key: "epoch", Value: e})
			}
			// As Trivy writes them: Rocky's advisories are per arch,
			// modular packages are keyed by their module.
			if p.Arch != "" {
				q = append(q, packageurl.Qualifier{Key: "arch", Value: p.Arch})
			}
			if p.Modularity != "" {
				q = append(q, packageurl.Qualifier{Key: "modularitylabel", Value: p.Modularity})
			}
		}
		if p.SrcName != "" && (p.SrcName != p.Name || p.SrcVersion != p.Version) {
			up := p.SrcName
			if p.SrcVersion != "" && p.SrcVersion != p.Version {
				up += "@" + p.SrcVersion
			}
			q = append(q, packageurl.Qualifier{Key: "upstream", Value: up})
		}
	case analyzer.TypeGoBinary, analyzer.TypeGoMod:
		typ = packageurl.TypeGolang
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			ns, name = name[:i], name[i+1:]
		}
	case analyzer.TypeNpm:
		typ = packageurl.TypeNPM
		if scope, n, ok := strings.Cut(name, "/"); ok && strings.HasPrefix(scope, "@") {
			ns, name = scope, n
		}
	case analyzer.TypePython:
		typ = packageurl.TypePyPi
		name = strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(name))
	case analyzer.TypeJar, analyzer.TypeMaven:
		g, a, ok := strings.Cut(name, ":")
		if !ok {
			return ""
		}
		typ, ns, name = packageurl.TypeMaven, g, a
	case analyzer.TypeGem:
		typ = packageurl.TypeGem
	case analyzer.TypeComposer:
		typ = packageurl.TypeComposer
		if vendor, n, ok := strings.Cut(name, "/"); ok {
			ns, name = vendor, n
		}
	case analyzer.TypeCargo:
		typ = packageurl.TypeCargo
	case analyzer.TypeNuGet:
		typ = packageurl.TypeNuget
	default:
		return ""
	}
	return packageurl.NewPackageURL(typ, ns, name, version, q, "").ToString()
}

// FromPURL turns a package URL back into a package and, for OS packages
// whose URL names the distribution, the OS. Package URLs of other types
// return ok false.
func FromPURL(s string) (p analyzer.Package, os *analyzer.OS, ok bool, err error) {
	u, err := packageurl.FromString(s)
	if err != nil {
		return analyzer.Package{}, nil, false, fmt.Errorf("package URL %q: %w", s, err)
	}
	q := u.Qualifiers.Map()
	p = analyzer.Package{Name: u.Name, Version: u.Version}
	switch u.Type {
	case packageurl.TypeDebian, packageurl.TypeApk, packageurl.TypeRPM:
		p.Type = map[string]string{packageurl.TypeDebian: analyzer.TypeDpkg, packageurl.TypeApk: analyzer.TypeAPK, packageurl.TypeRPM: analyzer.TypeRPM}[u.Type]
		if e := q["epoch"]; e != "" && e != "0" {
			p.Version = e + ":" + p.Version
		}
		if p.Type == analyzer.TypeRPM {
			p.Arch, p.Modularity = q["arch"], q["modularitylabel"]
		}
		p.SrcName, p.SrcVersion = p.Name, p.Version
		if up := q["upstream"]; up != "" {
			name, ver, hasVer := strings.Cut(up, "@")
			p.SrcName = name
			if hasVer {
				p.SrcVersion = ver
			}
		}
		if d := q["distro"]; d != "" && u.Namespace != "" {
			name := strings.TrimPrefix(d, u.Namespace+"-")
			os = &analyzer.OS{Family: strings.ToLower(u.Namespace), Name: name}
		}
	case packageurl.TypeGolang:
		p.Type = analyzer.TypeGoBinary
		if u.Namespace != "" {
			p.Name = u.Namespace + "/" + u.Name
		}
	case packageurl.TypeNPM:
		p.Type = analyzer.TypeNpm
		if u.Namespace != "" {
			p.Name = u.Namespace + "/" + u.Name
		}
	case packageurl.TypePyPi:
		p.Type = analyzer.TypePython
	case packageurl.TypeGem:
		p.Type = analyzer.TypeGem
	case packageurl.TypeComposer:
		p.Type = analyzer.TypeComposer
		if u.Namespace != "" {
			p.Name = u.Namespace + "/" + u.Name
		}
	case packageurl.TypeCargo:
		p.Type = analyzer.TypeCargo
	case packageurl.TypeNuget:
		p.Type = analyzer.TypeNuGet
	case packageurl.TypeMaven:
		p.Type = analyzer.TypeJar
		if u.Namespace == "" {
			return analyzer.Package{}, nil, false, nil
		}
		p.Name = u.Namespace + ":" + u.Name
	default:
		return analyzer.Package{}, nil, false, nil
	}
	if p.Name == "" || p.Version == "" {
		return analyzer.Package{}, nil, false, fmt.Errorf("package URL %q: no name or version", s)
	}
	return p, os, true, nil
}
