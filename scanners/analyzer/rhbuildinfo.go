package analyzer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// redHatContentManifest reads the content manifests Red Hat's image builds
// leave in each layer they make (root/buildinfo/content_manifests/*.json,
// usr/share/buildinfo/*.json on RHCOS): the repositories ("content sets")
// the layer's packages came from. Red Hat's advisories apply per product
// CPE, which the content sets name; without a manifest the matcher assumes
// the release's BaseOS and AppStream, as Trivy does.
type redHatContentManifest struct{}

// TypeRedHatContentManifest names the analyzer of Red Hat content manifests.
const TypeRedHatContentManifest = "redhat-content-manifest"

// Bounds on what a content manifest may name: real ones list a handful of
// repositories with names well under 100 bytes.
const (
	maxContentSets      = 256
	maxContentSetLength = 256
)

func (redHatContentManifest) Type() string { return TypeRedHatContentManifest }
func (redHatContentManifest) Version() int { return 1 }

func (redHatContentManifest) Required(p string, _ fs.FileInfo) bool {
	switch path.Dir(p) {
	case "root/buildinfo/content_manifests", "usr/share/buildinfo":
		return path.Ext(p) == ".json"
	}
	return false
}

// genericContentSetSuffix is the "__8" build suffix Red Hat's builds add
// to some content sets; it is no repository's name (trivy-db issue 435).
var genericContentSetSuffix = regexp.MustCompile(`__\d+$`)

func (redHatContentManifest) Analyze(_ context.Context, in Input) (*Result, error) {
	var m struct {
		ContentSets []string `json:"content_sets"`
	}
	dec := json.NewDecoder(bytes.NewReader(in.Content))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("content manifest: %w", err)
	}
	if len(m.ContentSets) > maxContentSets {
		return nil, fmt.Errorf("content manifest: %d content sets, more than the %d a manifest may name", len(m.ContentSets), maxContentSets)
	}
	var sets []string
	for _, cs := range m.ContentSets {
		cs = strings.TrimSpace(cs)
		if cs == "" {
			continue
		}
		if len(cs) > maxContentSetLength || strings.ContainsFunc(cs, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			return nil, fmt.Errorf("content manifest: content set %.40q is not a repository name", cs)
		}
		if cs = genericContentSetSuffix.ReplaceAllString(cs, ""); cs != "" {
			sets = append(sets, cs)
		}
	}
	if len(sets) == 0 {
		return nil, nil
	}
	return &Result{ContentSets: sets}, nil
}
