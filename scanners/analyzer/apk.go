package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
)

// apkInstalled reads Alpine's package database, lib/apk/db/installed.
type apkInstalled struct{}

const pathAPKInstalled = "lib/apk/db/installed"

func (apkInstalled) Type() string { return TypeAPK }
func (apkInstalled) Version() int { return 1 }

func (apkInstalled) Required(p string, _ fs.FileInfo) bool { return p == pathAPKInstalled }

func (apkInstalled) Analyze(_ context.Context, in Input) (*Result, error) {
	pkgs, owned, err := parseAPKInstalled(in.Content)
	if err != nil {
		return nil, fmt.Errorf("apk %s: %w", in.Path, err)
	}
	for i := range pkgs {
		pkgs[i].Location = Location{Layer: in.Layer, Path: in.Path}
	}
	return &Result{Packages: pkgs, OwnedFiles: owned}, nil
}

// parseAPKInstalled parses the blank-line separated records of an apk
// database; each line is "X:value" with a one-letter key (P name, V
// version, o origin, F directory, R file in the last F directory). It also
// returns the files the packages own.
func parseAPKInstalled(b []byte) ([]Package, []string, error) {
	var pkgs []Package
	var owned []string
	var cur Package
	var dir string
	flush := func() error {
		defer func() { cur = Package{} }()
		if cur.Name == "" && cur.Version == "" {
			return nil
		}
		if cur.Name == "" || cur.Version == "" {
			return fmt.Errorf("record without P: (name) or V: (version) near %q", cur.Name+cur.Version)
		}
		cur.Type = TypeAPK
		if cur.SrcName == "" {
			cur.SrcName = cur.Name
		}
		cur.SrcVersion = cur.Version
		pkgs = append(pkgs, cur)
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxDpkgLine)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if err := flush(); err != nil {
				return nil, nil, err
			}
			dir = ""
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			return nil, nil, fmt.Errorf("line %q is not a KEY:value field", truncate(line))
		}
		switch v := line[2:]; line[0] {
		case 'P':
			cur.Name = v
		case 'V':
			cur.Version = v
		case 'o':
			cur.SrcName = v
		case 'F':
			dir = v
		case 'R':
			if p := ownedPath(path.Join(dir, v)); p != "" {
				owned = append(owned, p)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	return pkgs, owned, nil
}
