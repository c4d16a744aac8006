package sbom

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/taskguard/taskguard/scanners/analyzer"
)

func testSubject() *Subject {
	loc := func(p string) analyzer.Location {
		return analyzer.Location{Layer: "sha256:aaaa", Path: p}
	}
	return &Subject{
		Name:        "registry.example.com/shop/web:1.4",
		Kind:        "registry",
		Digest:      "sha256:4f5e",
		OS:          &analyzer.OS{Family: "debian", Name: "12.5"},
		ToolVersion: "1.2.3",
		Created:     time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC),
		Packages: []analyzer.Package{
			{Type: analyzer.TypeDpkg, Name: "libc6", Version: "2.36-9+deb12u4", SrcName: "glibc", SrcVersion: "2.36-9+deb12u4", Location: loc("var/lib/dpkg/status")},
			{Type: analyzer.TypeDpkg, Name: "libssl3", Version: "3.0.11-1~deb12u2", SrcName: "openssl", SrcVersion: "3.0.11-1~deb12u1", Location: loc("var/lib/dpkg/status")},
			{Type: analyzer.TypeDpkg, Name: "tzdata", Version: "2024a-0+deb12u1", SrcName: "tzdata", SrcVersion: "2024a-0+deb12u1", Location: loc("var/lib/dpkg/status")},
			{Type: analyzer.TypeGoBinary, Name: "golang.org/x/text", Version: "v0.3.5", Location: loc("usr/local/bin/app")},
			{Type: analyzer.TypeGoBinary, Name: "stdlib", Version: "v1.22.1", Location: loc("usr/local/bin/app")},
			{Type: analyzer.TypeJar, Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Location: loc("srv/app.jar")},
			{Type: analyzer.TypeJar, Name: "mystery", Version: "2.3.4", Location: loc("srv/app.jar/BOOT-INF/lib/mystery-2.3.4.jar")},
			{Type: analyzer.TypeNpm, Name: "@babel/core", Version: "7.0.0", Location: loc("srv/node_modules/@babel/core/package.json")},
			{Type: analyzer.TypeNpm, Name: "lodash", Version: "4.17.15", Location: loc("srv/node_modules/lodash/package.json")},
			{Type: analyzer.TypePython, Name: "PyYAML", Version: "5.3", Location: loc("usr/lib/python3/dist-packages/PyYAML-5.3.dist-info/METADATA")},
		},
	}
}

func TestPURL(t *testing.T) {
	s := testSubject()
	want := []string{
		"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?distro=debian-12.5&upstream=glibc",
		"pkg:deb/debian/libssl3@3.0.11-1~deb12u2?distro=debian-12.5&upstream=openssl%403.0.11-1~deb12u1",
		"pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?distro=debian-12.5",
		"pkg:golang/golang.org/x/text@v0.3.5",
		"pkg:golang/stdlib@v1.22.1",
		"pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
		"",
		"pkg:npm/%40babel/core@7.0.0",
		"pkg:npm/lodash@4.17.15",
		"pkg:pypi/pyyaml@5.3",
	}
	for i, p := range s.Packages {
		got := PURL(s.OS, p)
		if got != want[i] {
			t.Errorf("PURL(%s %s) = %q, want %q", p.Type, p.Name, got, want[i])
		}
		if got == "" {
			continue
		}
		back, os, ok, err := FromPURL(got)
		if err != nil || !ok {
			t.Fatalf("FromPURL(%q): %v %v", got, ok, err)
		}
		wantBack := p
		wantBack.Location = analyzer.Location{}
		if p.Type == analyzer.TypePython {
			wantBack.Name = "pyyaml"
		}
		if !reflect.DeepEqual(back, wantBack) {
			t.Errorf("FromPURL(%q) = %+v, want %+v", got, back, wantBack)
		}
		if p.Type == analyzer.TypeDpkg && !reflect.DeepEqual(os, s.OS) {
			t.Errorf("FromPURL(%q) os = %+v, want %+v", got, os, s.OS)
		}
	}
	// Syft writes the distro as "debian-12" and an rpm epoch qualifier.
	p, os, ok, err := FromPURL("pkg:rpm/rocky/openssl-libs@3.0.7-24.el9?arch=x86_64&epoch=1&upstream=openssl-3.0.7-24.el9.src.rpm&distro=rocky-9.3")
	if err != nil || !ok || p.Version != "1:3.0.7-24.el9" || os == nil || os.Family != "rocky" || os.Name != "9.3" {
		t.Errorf("rpm purl: %+v %+v %v %v", p, os, ok, err)
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	dir := filepath.Join("testdata", "schema", "cyclonedx")
	c := jsonschema.NewCompiler()
	for file, url := range map[string]string{
		"bom-1.6.schema.json":   "http://cyclonedx.org/schema/bom-1.6.schema.json",
		"spdx.schema.json":      "http://cyclonedx.org/schema/spdx.schema.json",
		"jsf-0.82.schemax.json": "http://cyclonedx.org/schema/jsf-0.82.schema.json",
	} {
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
	}
	c.AssertFormat()
	sch, err := c.Compile("http://cyclonedx.org/schema/bom-1.6.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// TestCycloneDXValidatesAgainstTheSchema writes a document and validates it
// against CycloneDX's official 1.6 JSON schema; a broken document fails.
func TestCycloneDXValidatesAgainstTheSchema(t *testing.T) {
	sch := compileSchema(t)
	var buf bytes.Buffer
	if err := WriteCycloneDX(&buf, testSubject()); err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("our CycloneDX document does not validate: %v\n%s", err, buf.String())
	}
	if !strings.Contains(buf.String(), `"specVersion": "1.6"`) {
		t.Errorf("not a 1.6 document:\n%s", buf.String())
	}
	// The validation is not vacuous: a component without a name fails.
	broken := strings.Replace(buf.String(), `"name": "lodash"`, `"name": 42`, 1)
	bdoc, err := jsonschema.UnmarshalJSON(strings.NewReader(broken))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(bdoc); err == nil {
		t.Error("a component with a numeric name validates")
	}
	golden(t, "image.cdx.json", buf.Bytes())
}

// TestSPDXDocument writes an SPDX 2.3 document and checks it with
// tools-golang: it parses back, and its relationships and IDs are
// consistent (spdxlib). The official SPDX 2.3 JSON schema could not be
// obtained here (see README).
func TestSPDXDocument(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSPDX(&buf, testSubject()); err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" {
		t.Errorf("version %q licence %q", doc.SPDXVersion, doc.DataLicense)
	}
	if _, err := spdxlib.GetDescribedPackageIDs(doc); err != nil {
		t.Errorf("described packages: %v", err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Errorf("spdxlib: %v", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"spdxVersion", "dataLicense", "SPDXID", "name", "documentNamespace", "creationInfo", "packages", "relationships"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("required field %s missing", k)
		}
	}
	golden(t, "image.spdx.json", buf.Bytes())
}

// TestRoundTrip reads our own documents back into the same inventory.
func TestRoundTrip(t *testing.T) {
	s := testSubject()
	want := analyzer.Inventory{OS: s.OS}
	for _, p := range s.Packages {
		if PURL(s.OS, p) == "" {
			continue
		}
		if p.Type == analyzer.TypePython {
			p.Name = "pyyaml"
		}
		want.Packages = append(want.Packages, p)
	}
	analyzer.SortPackages(want.Packages)
	for _, w := range []struct {
		format string
		write  func(*bytes.Buffer) error
	}{
		{FormatCycloneDX, func(b *bytes.Buffer) error { return WriteCycloneDX(b, s) }},
		{FormatSPDXJSON, func(b *bytes.Buffer) error { return WriteSPDX(b, s) }},
	} {
		t.Run(w.format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := w.write(&buf); err != nil {
				t.Fatal(err)
			}
			d, err := Read(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if d.Format != w.format || d.Skipped != 1 {
				t.Errorf("format %s, skipped %d (the jar without a group)", d.Format, d.Skipped)
			}
			if !reflect.DeepEqual(d.Inventory, want) {
				t.Errorf("read back\n got %+v\nwant %+v", d.Inventory, want)
			}
		})
	}
	if _, err := Read(strings.NewReader(`{"hello":"world"}`)); err == nil {
		t.Error("a JSON object that is no SBOM was read")
	}
	if _, err := Read(strings.NewReader(`not json`)); err == nil {
		t.Error("garbage was read")
	}
}

// golden compares b with testdata/NAME (UPDATE_GOLDEN=1 rewrites it).
func golden(t *testing.T, name string, b []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs from the golden file (UPDATE_GOLDEN=1 rewrites it):\n%s", name, b)
	}
}

// FuzzRead: no document makes Read panic. The seeds are small documents
// of each format rather than the golden files: Go minimizes each new
// interesting input for up to a minute with candidates quadratic in its
// length, and inputs grown from the 7 KB golden files kept both workers
// minimizing (12 inputs run in 20 s).
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		`{"bomFormat":"CycloneDX","specVersion":"1.6","metadata":{"component":{"type":"container","name":"r.test/a:1"}},"components":[` +
			`{"bom-ref":"os","type":"operating-system","name":"debian","version":"12.5"},` +
			`{"type":"library","name":"libc6","version":"2.36-9","purl":"pkg:deb/debian/libc6@2.36-9?distro=debian-12.5&upstream=glibc","properties":[{"name":"taskguard:layer","value":"sha256:1"}]},` +
			`{"type":"library","name":"x","purl":"pkg:deb/debian/x@1?upstream=%40&distro=debian-"}]}`,
		`{"spdxVersion":"SPDX-2.3","name":"r.test/a:1","packages":[{"SPDXID":"SPDXRef-os","name":"alpine","versionInfo":"3.20.1","primaryPackagePurpose":"OPERATING-SYSTEM"},` +
			`{"SPDXID":"SPDXRef-a","name":"lodash","versionInfo":"4.17.20","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:npm/lodash@4.17.20"}]}]}`,
		`{"spdxVersion":"SPDX-2.3","packages":[{"SPDXID":"SPDXRef-a","name":"a","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:npm/%40/x@"}]}]}`,
	} {
		if len(s) > 512 {
			f.Fatalf("a seed of %d bytes: keep them under 512", len(s))
		}
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Read(bytes.NewReader(b))
	})
}

// TestPURLLanguageEcosystems: the lock file ecosystems get their purl
// types and come back from them (a declared Maven artifact comes back as
// a jar: both are matched as Maven's).
func TestPURLLanguageEcosystems(t *testing.T) {
	for _, tt := range []struct {
		p    analyzer.Package
		purl string
		back string
	}{
		{analyzer.Package{Type: analyzer.TypeGem, Name: "rack", Version: "2.2.3"}, "pkg:gem/rack@2.2.3", analyzer.TypeGem},
		{analyzer.Package{Type: analyzer.TypeComposer, Name: "guzzlehttp/guzzle", Version: "7.4.2"}, "pkg:composer/guzzlehttp/guzzle@7.4.2", analyzer.TypeComposer},
		{analyzer.Package{Type: analyzer.TypeCargo, Name: "smallvec", Version: "1.6.0"}, "pkg:cargo/smallvec@1.6.0", analyzer.TypeCargo},
		{analyzer.Package{Type: analyzer.TypeNuGet, Name: "Newtonsoft.Json", Version: "12.0.3"}, "pkg:nuget/Newtonsoft.Json@12.0.3", analyzer.TypeNuGet},
		{analyzer.Package{Type: analyzer.TypeMaven, Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1"}, "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", analyzer.TypeJar},
	} {
		got := PURL(nil, tt.p)
		if got != tt.purl {
			t.Errorf("PURL(%s %s) = %q, want %q", tt.p.Type, tt.p.Name, got, tt.purl)
		}
		back, _, ok, err := FromPURL(got)
		if err != nil || !ok || back.Type != tt.back || back.Name != tt.p.Name || back.Version != tt.p.Version {
			t.Errorf("FromPURL(%q) = %+v %v %v", got, back, ok, err)
		}
	}
}
