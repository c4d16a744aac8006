// Package sbom writes a scan's inventory as a software bill of materials
// (CycloneDX 1.6 JSON, SPDX 2.3 JSON), with a package URL for every
// package, and reads SBOMs (ours, Trivy's, Syft's) back into an inventory
// that can be matched against the vulnerability DB.
package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	spdxjson "github.com/spdx/tools-golang/json"
	spdxcommon "github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/taskguard/taskguard/scanners/analyzer"
)

// Formats.
const (
	FormatCycloneDX = "cyclonedx"
	FormatSPDXJSON  = "spdx-json"
)

// Subject is what an SBOM describes.
type Subject struct {
	// Name is the image as the user named it.
	Name string
	// Kind is where it came from (registry, tarball, ...).
	Kind string
	// Digest is the manifest digest, when known.
	Digest string
	// OS is the image's operating system, when known.
	OS *analyzer.OS
	// Packages are the packages found.
	Packages []analyzer.Package
	// ToolVersion is taskguard's version.
	ToolVersion string
	// Created is when the inventory was made.
	Created time.Time
}

// Property names in CycloneDX documents.
const (
	propPkgType    = "taskguard:pkgType"
	propPath       = "taskguard:path"
	propLayer      = "taskguard:layer"
	propSrcName    = "taskguard:srcName"
	propSrcVersion = "taskguard:srcVersion"
	// Trivy's names for the same facts.
	trivySrcName    = "aquasecurity:trivy:SrcName"
	trivySrcVersion = "aquasecurity:trivy:SrcVersion"
	trivySrcRelease = "aquasecurity:trivy:SrcRelease"
	trivySrcEpoch   = "aquasecurity:trivy:SrcEpoch"
)

// uuid returns a name-based UUID (version 5 layout over SHA-256) of the
// subject, so that the same inventory gives the same document.
func (s *Subject) uuid() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", s.Name, s.Digest, s.Created.UTC().Format(time.RFC3339Nano), s.ToolVersion)
	for _, p := range s.Packages {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", p.Type, p.Name, p.Version, p.Location.Path)
	}
	b := h.Sum(nil)[:16]
	b[6] = (b[6] & 0x0f) | 0x50
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// WriteCycloneDX writes s as a CycloneDX 1.6 JSON document.
func WriteCycloneDX(w io.Writer, s *Subject) error {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + s.uuid()
	root := cdx.Component{BOMRef: "image", Type: cdx.ComponentTypeContainer, Name: s.Name}
	if s.Digest != "" {
		root.Version = s.Digest
	}
	bom.Metadata = &cdx.Metadata{
		Timestamp: s.Created.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: "taskguard", Version: s.ToolVersion,
		}}},
		Component: &root,
	}
	var comps []cdx.Component
	var deps []string
	if s.OS != nil {
		comps = append(comps, cdx.Component{BOMRef: "os", Type: cdx.ComponentTypeOS, Name: s.OS.Family, Version: s.OS.Name})
		deps = append(deps, "os")
	}
	for i, p := range s.Packages {
		ref := "pkg-" + strconv.Itoa(i+1)
		c := cdx.Component{BOMRef: ref, Type: cdx.ComponentTypeLibrary, Name: p.Name, Version: p.Version, PackageURL: PURL(s.OS, p)}
		if g, a, ok := strings.Cut(p.Name, ":"); ok && p.Type == analyzer.TypeJar {
			c.Group, c.Name = g, a
		}
		props := []cdx.Property{{Name: propPkgType, Value: p.Type}}
		if p.Location.Path != "" {
			props = append(props, cdx.Property{Name: propPath, Value: p.Location.Path})
		}
		if p.Location.Layer != "" {
			props = append(props, cdx.Property{Name: propLayer, Value: p.Location.Layer})
		}
		if p.SrcName != "" {
			props = append(props, cdx.Property{Name: propSrcName, Value: p.SrcName}, cdx.Property{Name: propSrcVersion, Value: p.SrcVersion})
		}
		c.Properties = &props
		comps = append(comps, c)
		deps = append(deps, ref)
	}
	bom.Components = &comps
	bom.Dependencies = &[]cdx.Dependency{{Ref: "image", Dependencies: &deps}}
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, cdx.SpecVersion1_6); err != nil {
		return fmt.Errorf("write CycloneDX: %w", err)
	}
	return nil
}

// WriteSPDX writes s as an SPDX 2.3 JSON document.
func WriteSPDX(w io.Writer, s *Subject) error {
	name := s.Name
	if name == "" {
		name = "image"
	}
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name,
		DocumentNamespace: "https://taskguard.invalid/spdx/" + s.uuid(),
		CreationInfo: &spdx.CreationInfo{
			Creators: []spdxcommon.Creator{{CreatorType: "Tool", Creator: "taskguard-" + s.ToolVersion}},
			Created:  s.Created.UTC().Format(time.RFC3339),
		},
	}
	root := &spdx.Package{
		PackageName: name, PackageSPDXIdentifier: "Image", PackageDownloadLocation: "NOASSERTION",
		PrimaryPackagePurpose: "CONTAINER", PackageVersion: s.Digest,
	}
	doc.Packages = append(doc.Packages, root)
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA: spdxcommon.MakeDocElementID("", "DOCUMENT"), RefB: spdxcommon.MakeDocElementID("", "Image"), Relationship: "DESCRIBES",
	})
	contains := func(id spdxcommon.ElementID) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: spdxcommon.MakeDocElementID("", "Image"), RefB: spdxcommon.MakeDocElementID("", string(id)), Relationship: "CONTAINS",
		})
	}
	if s.OS != nil {
		doc.Packages = append(doc.Packages, &spdx.Package{
			PackageName: s.OS.Family, PackageVersion: s.OS.Name, PackageSPDXIdentifier: "OperatingSystem",
			PackageDownloadLocation: "NOASSERTION", PrimaryPackagePurpose: "OPERATING-SYSTEM",
		})
		contains("OperatingSystem")
	}
	for i, p := range s.Packages {
		id := spdxcommon.ElementID("Package-" + strconv.Itoa(i+1))
		sp := &spdx.Package{
			PackageName: p.Name, PackageVersion: p.Version, PackageSPDXIdentifier: id,
			PackageDownloadLocation: "NOASSERTION", PrimaryPackagePurpose: "LIBRARY",
		}
		if p.SrcName != "" && (p.SrcName != p.Name || p.SrcVersion != p.Version) {
			sp.PackageSourceInfo = "built package from: " + p.SrcName + " " + p.SrcVersion
		}
		if purl := PURL(s.OS, p); purl != "" {
			sp.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: purl}}
		}
		comment := "type: " + p.Type
		if p.Location.Path != "" {
			comment += "; path: " + p.Location.Path
		}
		if p.Location.Layer != "" {
			comment += "; layer: " + p.Location.Layer
		}
		sp.PackageComment = comment
		doc.Packages = append(doc.Packages, sp)
		contains(id)
	}
	if err := spdxjson.Write(doc, w, spdxjson.Indent("  ")); err != nil {
		return fmt.Errorf("write SPDX: %w", err)
	}
	return nil
}

// MaxSize bounds an SBOM that Read accepts.
const MaxSize = 256 << 20

// Document is an SBOM read back.
type Document struct {
	// Format is FormatCycloneDX or FormatSPDXJSON.
	Format string
	// Name is the subject the SBOM names, if any.
	Name string
	// Inventory holds the packages whose package URLs taskguard matches,
	// and the OS.
	Inventory analyzer.Inventory
	// Skipped counts components without a package URL taskguard can match.
	Skipped int
}

// ErrUnknownFormat is returned for a document that is neither CycloneDX
// JSON nor SPDX JSON.
var ErrUnknownFormat = errors.New("not a CycloneDX or SPDX JSON document")

// Read parses a CycloneDX or SPDX JSON document (at most MaxSize bytes).
func Read(r io.Reader) (*Document, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read SBOM: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("read SBOM: more than %d bytes", MaxSize)
	}
	var head struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		SPDXVersion string `json:"spdxVersion"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("read SBOM: %w: %v", ErrUnknownFormat, err)
	}
	switch {
	case head.BOMFormat == "CycloneDX":
		return readCycloneDX(b)
	case strings.HasPrefix(head.SPDXVersion, "SPDX-2."):
		return readSPDX(b)
	}
	return nil, fmt.Errorf("read SBOM: %w", ErrUnknownFormat)
}

func readCycloneDX(b []byte) (*Document, error) {
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(b), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, fmt.Errorf("read CycloneDX: %w", err)
	}
	d := &Document{Format: FormatCycloneDX}
	if bom.Metadata != nil && bom.Metadata.Component != nil {
		d.Name = bom.Metadata.Component.Name
	}
	var purlOS *analyzer.OS
	var walk func([]cdx.Component) error
	walk = func(comps []cdx.Component) error {
		for _, c := range comps {
			if c.Components != nil {
				if err := walk(*c.Components); err != nil {
					return err
				}
			}
			if c.Type == cdx.ComponentTypeOS {
				if c.Name != "" && c.Version != "" {
					d.Inventory.OS = &analyzer.OS{Family: strings.ToLower(c.Name), Name: c.Version}
				}
				continue
			}
			if c.PackageURL == "" {
				d.Skipped++
				continue
			}
			p, os, ok, err := FromPURL(c.PackageURL)
			if err != nil {
				return err
			}
			if !ok {
				d.Skipped++
				continue
			}
			props := map[string]string{}
			if c.Properties != nil {
				for _, pr := range *c.Properties {
					props[pr.Name] = pr.Value
				}
			}
			if v := firstNonEmpty(props[propSrcName], props[trivySrcName]); v != "" {
				p.SrcName = v
			}
			if v := props[propSrcVersion]; v != "" {
				p.SrcVersion = v
			} else if v := props[trivySrcVersion]; v != "" {
				// Trivy splits the source version: epoch, version, release.
				if r := props[trivySrcRelease]; r != "" {
					v += "-" + r
				}
				if e := props[trivySrcEpoch]; e != "" && e != "0" {
					v = e + ":" + v
				}
				p.SrcVersion = v
			}
			p.Location = analyzer.Location{Path: props[propPath], Layer: props[propLayer]}
			if os != nil && purlOS == nil {
				purlOS = os
			}
			d.Inventory.Packages = append(d.Inventory.Packages, p)
		}
		return nil
	}
	if bom.Components != nil {
		if err := walk(*bom.Components); err != nil {
			return nil, fmt.Errorf("read CycloneDX: %w", err)
		}
	}
	if d.Inventory.OS == nil {
		d.Inventory.OS = purlOS
	}
	analyzer.SortPackages(d.Inventory.Packages)
	return d, nil
}

func readSPDX(b []byte) (*Document, error) {
	doc, err := spdxjson.Read(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("read SPDX: %w", err)
	}
	d := &Document{Format: FormatSPDXJSON, Name: doc.DocumentName}
	var purlOS *analyzer.OS
	for _, sp := range doc.Packages {
		if sp == nil {
			continue
		}
		if sp.PrimaryPackagePurpose == "OPERATING-SYSTEM" {
			if sp.PackageName != "" && sp.PackageVersion != "" {
				d.Inventory.OS = &analyzer.OS{Family: strings.ToLower(sp.PackageName), Name: sp.PackageVersion}
			}
			continue
		}
		var purl string
		for _, ref := range sp.PackageExternalReferences {
			if ref != nil && ref.RefType == "purl" {
				purl = ref.Locator
				break
			}
		}
		if purl == "" {
			if sp.PrimaryPackagePurpose != "CONTAINER" {
				d.Skipped++
			}
			continue
		}
		p, os, ok, err := FromPURL(purl)
		if err != nil {
			return nil, fmt.Errorf("read SPDX: %w", err)
		}
		if !ok {
			d.Skipped++
			continue
		}
		if src, ok := strings.CutPrefix(sp.PackageSourceInfo, "built package from: "); ok {
			// Trivy and taskguard: "built package from: <name> <version>".
			if name, ver, ok := strings.Cut(strings.TrimSpace(src), " "); ok {
				p.SrcName, p.SrcVersion = name, ver
			}
		}
		for _, part := range strings.Split(sp.PackageComment, "; ") {
			if v, ok := strings.CutPrefix(part, "path: "); ok {
				p.Location.Path = v
			}
			if v, ok := strings.CutPrefix(part, "layer: "); ok {
				p.Location.Layer = v
			}
		}
		if os != nil && purlOS == nil {
			purlOS = os
		}
		d.Inventory.Packages = append(d.Inventory.Packages, p)
	}
	if d.Inventory.OS == nil {
		d.Inventory.OS = purlOS
	}
	analyzer.SortPackages(d.Inventory.Packages)
	return d, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
