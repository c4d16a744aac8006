package compliance

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/taskguard/taskguard/scanners/image"
)

// The image checks, in ID order.
var (
	chkNonRoot = Check{ID: "TG-IMG-001", Family: FamilyImage, Severity: SeverityMedium,
		Title:       "Image runs as root",
		Remediation: "Add a USER instruction with a non-root user (USER 10001) to the Dockerfile."}
	chkHealthcheck = Check{ID: "TG-IMG-002", Family: FamilyImage, Severity: SeverityLow,
		Title:       "No HEALTHCHECK",
		Remediation: "Add a HEALTHCHECK instruction, or a healthCheck in the task definition."}
	chkSecretEnv = Check{ID: "TG-IMG-003", Family: FamilyImage, Severity: SeverityHigh,
		Title:       "Secret in image ENV or labels",
		Remediation: "Remove the secret from ENV/LABEL (it is readable by anyone who can pull the image) and pass it at run time from Secrets Manager or SSM."}
	chkSecretFile = Check{ID: "TG-IMG-004", Family: FamilyImage, Severity: SeverityHigh,
		Title:       "Private key or credentials file in the image",
		Remediation: "Remove the file in the same layer that adds it (or use a build secret mount); a file deleted in a later layer is still in the image."}
	chkSetuid = Check{ID: "TG-IMG-005", Family: FamilyImage, Severity: SeverityLow,
		Title:       "setuid/setgid binaries",
		Remediation: "Remove the setuid/setgid bits the app does not need (RUN chmod a-s ...)."}
	chkCaches = Check{ID: "TG-IMG-006", Family: FamilyImage, Severity: SeverityLow,
		Title:       "Package manager cache left in the image",
		Remediation: "Clean the cache in the same RUN step (apt-get clean && rm -rf /var/lib/apt/lists/*, apk --no-cache, pip --no-cache-dir, npm cache clean --force)."}
	chkRemoteAdd = Check{ID: "TG-IMG-007", Family: FamilyImage, Severity: SeverityMedium,
		Title:       "ADD of a remote URL",
		Remediation: "Download with a pinned checksum in a RUN step (or COPY from a verified build stage) instead of ADD <url>."}
	chkTag = Check{ID: "TG-IMG-008", Family: FamilyImage, Severity: SeverityLow,
		Title:       "Image referenced by the latest tag or by no tag",
		Remediation: "Reference an immutable version tag or, better, the digest (repository@sha256:...)."}
	chkSSHD = Check{ID: "TG-IMG-009", Family: FamilyImage, Severity: SeverityMedium,
		Title:       "SSH server installed",
		Remediation: "Remove openssh-server; use ECS Exec for interactive access."}
	chkWorldWritable = Check{ID: "TG-IMG-010", Family: FamilyImage, Severity: SeverityMedium,
		Title:       "World-writable files in system directories",
		Remediation: "Remove the world-writable bit (chmod o-w) from files under /etc, /usr, /bin, /sbin and /lib."}
)

// ImageChecks lists the image checks in ID order.
func ImageChecks() []Check {
	return []Check{chkNonRoot, chkHealthcheck, chkSecretEnv, chkSecretFile, chkSetuid, chkCaches, chkRemoteAdd, chkTag, chkSSHD, chkWorldWritable}
}

// maxListed bounds how many files one finding names.
const maxListed = 20

// credentialFiles are paths (or base names) that hold credentials whatever
// their content.
var credentialFiles = []string{
	".aws/credentials", ".docker/config.json", ".git-credentials", ".netrc", ".pgpass",
	".ssh/id_rsa", ".ssh/id_dsa", ".ssh/id_ecdsa", ".ssh/id_ed25519", ".config/gcloud/credentials.db",
}

// keyExtensions are files whose content is checked for a private key header.
var keyExtensions = []string{".pem", ".key", ".p8", ".der", ".crt"}

var privateKeyHeader = []byte("PRIVATE KEY-----")

// cacheDirs are package-manager caches (path prefixes).
var cacheDirs = []string{
	"var/cache/apt/archives/", "var/lib/apt/lists/", "var/cache/apk/", "var/cache/yum/", "var/cache/dnf/",
	"root/.cache/pip/", "root/.npm/_cacache/", "root/.cache/yarn/", "usr/local/share/.cache/yarn/",
}

var systemDirs = []string{"etc/", "usr/", "bin/", "sbin/", "lib/", "lib64/"}

// ImageInput is what the image checks look at.
type ImageInput struct {
	// Reference is the image reference the user gave (for the tag check);
	// empty for a tarball or a directory.
	Reference string
	// Config is the image config; nil for a root filesystem directory.
	Config *v1.ConfigFile
	// Custom are the user's own checks, run in the same walk.
	Custom []CustomCheck
}

// CustomCheck is a user-defined image check with one condition: a file
// that must exist (FileExists) or must not (FileAbsent), as an absolute glob
// over regular files, or an ENV variable that must exist and match EnvMatch.
type CustomCheck struct {
	Check
	FileExists, FileAbsent string
	EnvName                string
	EnvMatch               *regexp.Regexp
}

// imageState collects file observations during one walk.
type imageState struct {
	setuid, secretFiles, worldWritable []string
	caches                             map[string]int
	sshd                               bool
	custom                             []CustomCheck
	customHits                         []string // first matching path per custom file check
}

// CheckImage walks img once and runs the image checks. Files that cannot be
// read are skipped by the walk with a warning; an unreadable image is an error.
// An image opened with a layer cache is walked through it: what the checks
// need from each file (mode, size, whether a key file holds a private key)
// is kept per layer, and a cached layer is not read again.
func CheckImage(ctx context.Context, img *image.Image, in ImageInput) ([]Finding, error) {
	st := &imageState{caches: map[string]int{}, custom: in.Custom, customHits: make([]string, len(in.Custom))}
	if c := img.LayerCache(); c != nil && img.Kind != image.KindRootFS {
		lc := factCache{c: c, sig: fmt.Sprintf("%s;max=%d", factFormat, img.MaxFileSize())}
		kept, err := img.WalkLayersCached(ctx, 1, func(f image.File) (any, error) {
			return factOf(f), nil
		}, lc)
		if err != nil {
			return nil, fmt.Errorf("compliance checks: %w", err)
		}
		for _, k := range kept {
			if fact, ok := k.Value.(fileFact); ok {
				st.observeFact(k.Path, fact)
			}
		}
		return st.findings(in), nil
	}
	err := img.Walk(ctx, func(f image.File) error {
		return st.observe(f)
	})
	if err != nil {
		return nil, fmt.Errorf("compliance checks: %w", err)
	}
	return st.findings(in), nil
}

// fileFact is what the image checks need from one regular file.
type fileFact struct {
	Mode fs.FileMode
	Size int64
	// PrivateKey is set for a key file (by extension) holding a private key.
	PrivateKey bool
}

// factOf reads what the checks need from f: its mode and size, and the
// content of a small key file outside usr/share (not of a credential file,
// which is a finding by its name).
func factOf(f image.File) fileFact {
	p := f.Path
	fact := fileFact{Mode: f.Info.Mode(), Size: f.Info.Size()}
	for _, cf := range credentialFiles {
		if p == cf || strings.HasSuffix(p, "/"+cf) {
			return fact
		}
	}
	if slices.Contains(keyExtensions, strings.ToLower(path.Ext(p))) && f.Info.Size() < 1<<20 && !strings.HasPrefix(p, "usr/share/") {
		b, err := f.ReadAll()
		if err == nil && bytes.Contains(b, privateKeyHeader) {
			fact.PrivateKey = true
		}
	}
	return fact
}

func (st *imageState) observe(f image.File) error {
	st.observeFact(f.Path, factOf(f))
	return nil
}

func (st *imageState) observeFact(p string, fact fileFact) {
	for i, c := range st.custom {
		glob := c.FileExists + c.FileAbsent // one of them is set
		if glob != "" && st.customHits[i] == "" {
			if ok, _ := path.Match(glob, "/"+p); ok {
				st.customHits[i] = "/" + p
			}
		}
	}
	mode := fact.Mode
	if mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		st.setuid = append(st.setuid, "/"+p)
	}
	if mode.Perm()&0o002 != 0 && hasAnyPrefix(p, systemDirs) {
		st.worldWritable = append(st.worldWritable, "/"+p)
	}
	if p == "usr/sbin/sshd" {
		st.sshd = true
	}
	for _, c := range cacheDirs {
		if strings.HasPrefix(p, c) && path.Base(p) != "lock" && !strings.HasSuffix(p, "/partial") {
			st.caches["/"+strings.TrimSuffix(c, "/")]++
		}
	}
	for _, cf := range credentialFiles {
		if p == cf || strings.HasSuffix(p, "/"+cf) {
			st.secretFiles = append(st.secretFiles, "/"+p)
			return
		}
	}
	if fact.PrivateKey {
		st.secretFiles = append(st.secretFiles, "/"+p)
	}
}

func hasAnyPrefix(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

func (st *imageState) findings(in ImageInput) []Finding {
	const target = "image"
	var out []Finding
	if cf := in.Config; cf != nil {
		u, _, _ := strings.Cut(strings.TrimSpace(cf.Config.User), ":")
		if u == "" || u == "0" || u == "root" {
			msg := "the image has no USER, so it runs as root"
			if u != "" {
				msg = fmt.Sprintf("USER is %q", cf.Config.User)
			}
			out = append(out, chkNonRoot.finding(target, msg))
		}
		if hc := cf.Config.Healthcheck; hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
			out = append(out, chkHealthcheck.finding(target, "the image declares no HEALTHCHECK"))
		}
		for _, env := range cf.Config.Env {
			name, value, _ := strings.Cut(env, "=")
			if kind := secretKind(name, value); kind != "" {
				out = append(out, chkSecretEnv.finding(target, fmt.Sprintf("ENV %s holds %s", name, kind)))
			}
		}
		for _, name := range sortedLabelKeys(cf.Config.Labels) {
			if kind := secretKind(name, cf.Config.Labels[name]); kind != "" {
				out = append(out, chkSecretEnv.finding(target, fmt.Sprintf("LABEL %s holds %s", name, kind)))
			}
		}
		for _, h := range cf.History {
			if cmd := addedURL(h.CreatedBy); cmd != "" {
				out = append(out, chkRemoteAdd.finding(target, "history: "+cmd))
			}
		}
	}
	for _, p := range sortedCapped(st.secretFiles) {
		out = append(out, chkSecretFile.finding(p, "file "+p+" holds a private key or credentials"))
	}
	if len(st.setuid) > 0 {
		out = append(out, chkSetuid.finding(target, listMessage("setuid/setgid files", st.setuid)))
	}
	if len(st.caches) > 0 {
		var dirs []string
		for d, n := range st.caches {
			dirs = append(dirs, fmt.Sprintf("%s (%d files)", d, n))
		}
		out = append(out, chkCaches.finding(target, listMessage("package caches", dirs)))
	}
	if ref := in.Reference; ref != "" && !strings.Contains(ref, "@sha256:") {
		last := ref[strings.LastIndex(ref, "/")+1:]
		if _, tag, ok := strings.Cut(last, ":"); !ok {
			out = append(out, chkTag.finding(target, fmt.Sprintf("%s has no tag, so it means :latest", ref)))
		} else if tag == "latest" {
			out = append(out, chkTag.finding(target, fmt.Sprintf("%s uses the latest tag", ref)))
		}
	}
	if st.sshd {
		out = append(out, chkSSHD.finding("/usr/sbin/sshd", "/usr/sbin/sshd is installed"))
	}
	if len(st.worldWritable) > 0 {
		out = append(out, chkWorldWritable.finding(target, listMessage("world-writable files", st.worldWritable)))
	}
	out = append(out, st.customFindings(in.Config)...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].CheckID < out[j].CheckID })
	return out
}

// addedURL returns the ADD instruction of a history entry that fetches a URL.
func addedURL(createdBy string) string {
	s := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(createdBy), "/bin/sh -c #(nop)"))
	fields := strings.Fields(s)
	if len(fields) < 2 || !strings.EqualFold(fields[0], "ADD") {
		return ""
	}
	for _, f := range fields[1:] {
		if strings.HasPrefix(f, "http://") || strings.HasPrefix(f, "https://") {
			return s
		}
	}
	return ""
}

func sortedCapped(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	s = slices.Compact(s)
	if len(s) > maxListed {
		s = s[:maxListed]
	}
	return s
}

func listMessage(what string, items []string) string {
	all := slices.Clone(items)
	slices.Sort(all)
	all = slices.Compact(all)
	shown := all
	more := ""
	if len(shown) > maxListed {
		shown = shown[:maxListed]
		more = fmt.Sprintf(" and %d more", len(all)-maxListed)
	}
	return fmt.Sprintf("%d %s: %s%s", len(all), what, strings.Join(shown, ", "), more)
}

func sortedLabelKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Observer runs the file-based image checks for a caller that walks the
// files itself (a defender inventorying a running container in one
// throttled pass): Observe each file, then ask for the Findings.
type Observer struct {
	st imageState
}

// NewObserver returns an empty observer.
func NewObserver() *Observer { return NewObserverWith(nil) }

// NewObserverWith returns an empty observer that also runs the custom
// checks during the walk; their ENV conditions are evaluated by Findings
// against the ImageInput's Config.
func NewObserverWith(custom []CustomCheck) *Observer {
	return &Observer{st: imageState{caches: map[string]int{}, custom: custom, customHits: make([]string, len(custom))}}
}

// Observe looks at one file. It may read the content of small key files.
func (o *Observer) Observe(f image.File) error { return o.st.observe(f) }

// Findings runs the checks over what was observed and in.
func (o *Observer) Findings(in ImageInput) []Finding { return o.st.findings(in) }

func (st *imageState) customFindings(cf *v1.ConfigFile) []Finding {
	var out []Finding
	for i, c := range st.custom {
		c.Family = FamilyImage
		switch hit := st.customHits[i]; {
		case c.FileExists != "" && hit == "":
			out = append(out, c.finding("image", fmt.Sprintf("no file matches %s", c.FileExists)))
		case c.FileAbsent != "" && hit != "":
			out = append(out, c.finding(hit, fmt.Sprintf("file %s matches %s, which must be absent", hit, c.FileAbsent)))
		case c.EnvName != "" && cf != nil:
			value, found := "", false
			for _, env := range cf.Config.Env {
				if name, v, _ := strings.Cut(env, "="); name == c.EnvName {
					value, found = v, true
				}
			}
			switch {
			case !found:
				out = append(out, c.finding("image", fmt.Sprintf("ENV %s is not set", c.EnvName)))
			case c.EnvMatch != nil && !c.EnvMatch.MatchString(value):
				// The value is not quoted: it may be a secret.
				out = append(out, c.finding("image", fmt.Sprintf("ENV %s does not match %s", c.EnvName, c.EnvMatch)))
			}
		}
	}
	return out
}
