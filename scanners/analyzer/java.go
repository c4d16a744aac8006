package analyzer

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// javaArchive reads Java archives (.jar, .war, .ear, .par): the Maven
// coordinates in META-INF/maven/**/pom.properties, else the manifest's
// Implementation-* headers, else the file name; nested archives (Spring
// Boot's BOOT-INF/lib, WEB-INF/lib) are read too.
type javaArchive struct{}

// Limits for nested archives.
const (
	maxJavaDepth      = 4
	maxJavaNestedSize = 256 << 20
	maxJavaEntry      = 1 << 20
)

func (javaArchive) Type() string { return TypeJar }
func (javaArchive) Version() int { return 2 }

func isJavaArchive(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".jar", ".war", ".ear", ".par":
		return true
	}
	return false
}

func (javaArchive) Required(p string, info fs.FileInfo) bool {
	return isJavaArchive(p) && (info == nil || info.Size() > 0)
}

func (javaArchive) Analyze(_ context.Context, in Input) (*Result, error) {
	pkgs, err := parseJavaArchive(in.Path, in.Content, 0)
	if err != nil {
		return nil, fmt.Errorf("java %s: %w", in.Path, err)
	}
	for i := range pkgs {
		pkgs[i].Location.Layer = in.Layer
	}
	return &Result{Packages: pkgs}, nil
}

// parseJavaArchive lists the packages in one archive; loc is its path
// (outer.jar/BOOT-INF/lib/inner.jar for nested ones).
func parseJavaArchive(loc string, content []byte, depth int) ([]Package, error) {
	zr, err := zip.NewReader(bytes.NewReader(content), int64(len(content)))
	if err != nil {
		return nil, fmt.Errorf("read zip: %w", err)
	}
	var pkgs, nested []Package
	var manifest map[string]string
	for _, f := range zr.File {
		name := f.Name
		switch {
		case strings.HasPrefix(name, "META-INF/maven/") && path.Base(name) == "pom.properties":
			b, err := readZipEntry(f, maxJavaEntry)
			if err != nil {
				return nil, err
			}
			if p, ok := parsePomProperties(b); ok {
				p.Location = Location{Path: loc}
				pkgs = append(pkgs, p)
			}
		case name == "META-INF/MANIFEST.MF":
			b, err := readZipEntry(f, maxJavaEntry)
			if err != nil {
				return nil, err
			}
			manifest = parseJarManifest(b)
		case isJavaArchive(name) && depth < maxJavaDepth:
			if f.UncompressedSize64 > maxJavaNestedSize {
				continue
			}
			b, err := readZipEntry(f, maxJavaNestedSize)
			if err != nil {
				return nil, err
			}
			inner, err := parseJavaArchive(loc+"/"+name, b, depth+1)
			if err != nil {
				// One broken nested jar must not hide its siblings.
				continue
			}
			nested = append(nested, inner...)
		}
	}
	if len(pkgs) == 0 {
		if p, ok := javaFromManifest(manifest, path.Base(loc)); ok {
			p.Location = Location{Path: loc}
			pkgs = append(pkgs, p)
		} else if p, ok := javaFromFileName(path.Base(loc)); ok {
			p.Location = Location{Path: loc}
			pkgs = append(pkgs, p)
		}
	}
	return append(pkgs, nested...), nil
}

func readZipEntry(f *zip.File, max int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("zip entry %s: %w", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fmt.Errorf("zip entry %s: %w", f.Name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("zip entry %s: more than %d bytes", f.Name, max)
	}
	return b, nil
}

// parsePomProperties reads groupId, artifactId and version.
func parsePomProperties(b []byte) (Package, bool) {
	props := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		props[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	g, a, v := props["groupId"], props["artifactId"], props["version"]
	if g == "" || a == "" || v == "" {
		return Package{}, false
	}
	return Package{Type: TypeJar, Name: g + ":" + a, Version: v}, true
}

// parseJarManifest reads the main section of a MANIFEST.MF, joining
// continuation lines (which start with one space).
func parseJarManifest(b []byte) map[string]string {
	out := map[string]string{}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break
		}
		if line[0] == ' ' && last != "" {
			out[last] += line[1:]
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = strings.TrimSpace(k)
		out[last] = strings.TrimSpace(v)
	}
	return out
}

// javaFromManifest names an archive from its manifest, only when the
// manifest is sure of the Maven coordinates: Maven's archiver writes the
// groupId as Implementation-Vendor-Id and the project's name (the
// artifactId unless the POM names it) as Implementation-Title. The
// coordinates are taken only when the title and Implementation-Version
// agree with the file name ("<artifactId>-<version>.jar"), the archiver's
// defaults left alone. Other headers are not group IDs: the
// Bundle-SymbolicName "org.apache.tomcat-embed-websocket" belongs to the
// group org.apache.tomcat.embed, the Automatic-Module-Name
// "com.fasterxml.jackson.databind" to com.fasterxml.jackson.core, and
// Apache Commons jars say "Implementation-Vendor-Id: org.apache" whatever
// their group. A wrong group can never match an advisory, so the archive
// is better listed under its file name (javaFromFileName).
func javaFromManifest(m map[string]string, fileName string) (Package, bool) {
	if m == nil {
		return Package{}, false
	}
	group, title, version := m["Implementation-Vendor-Id"], m["Implementation-Title"], m["Implementation-Version"]
	if group == "" || title == "" || version == "" || strings.ContainsAny(group, " :/") {
		return Package{}, false
	}
	fromName, ok := javaFromFileName(fileName)
	if !ok || fromName.Name != title || fromName.Version != version {
		return Package{}, false
	}
	return Package{Type: TypeJar, Name: group + ":" + title, Version: version}, true
}

// jarFileName matches "artifact-1.2.3.jar" style names.
var jarFileName = regexp.MustCompile(`^(.+?)-(\d[\w.\-]*)\.(?:jar|war|ear|par)$`)

// javaFromFileName guesses artifact and version from the file name; without
// a group ID the package is listed but cannot be matched.
func javaFromFileName(name string) (Package, bool) {
	m := jarFileName.FindStringSubmatch(name)
	if m == nil {
		return Package{}, false
	}
	return Package{Type: TypeJar, Name: m[1], Version: m[2]}, true
}
