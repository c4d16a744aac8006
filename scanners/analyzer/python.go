package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// pythonPackage reads installed Python distributions: METADATA in
// *.dist-info directories and PKG-INFO of eggs (*.egg-info as a file or a
// directory, EGG-INFO/PKG-INFO inside .egg directories).
type pythonPackage struct{}

func (pythonPackage) Type() string { return TypePython }
func (pythonPackage) Version() int { return 1 }

func (pythonPackage) Required(p string, _ fs.FileInfo) bool {
	dir, base := path.Dir(p), path.Base(p)
	switch {
	case base == "METADATA":
		return strings.HasSuffix(dir, ".dist-info")
	case base == "PKG-INFO":
		return strings.HasSuffix(dir, ".egg-info") || path.Base(dir) == "EGG-INFO"
	}
	return strings.HasSuffix(base, ".egg-info")
}

func (pythonPackage) Analyze(_ context.Context, in Input) (*Result, error) {
	name, version, err := parseCoreMetadata(in.Content)
	if err != nil {
		return nil, fmt.Errorf("python %s: %w", in.Path, err)
	}
	return &Result{Packages: []Package{{
		Type: TypePython, Name: name, Version: version,
		Location: Location{Layer: in.Layer, Path: in.Path},
	}}}, nil
}

// parseCoreMetadata reads Name and Version from the email-style header of
// Python core metadata; the body after the first blank line is ignored.
func parseCoreMetadata(b []byte) (name, version string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxDpkgLine)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "name":
			if name == "" {
				name = strings.TrimSpace(v)
			}
		case "version":
			if version == "" {
				version = strings.TrimSpace(v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", err
	}
	if name == "" || version == "" {
		return "", "", fmt.Errorf("no Name or Version header")
	}
	return name, version, nil
}
