package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
)

// apkInstalled reads Alpine's package database, lib/apk/db/installed.
type apkInstalled struct{}

const pathAPKInstalled = "lib/apk/db/installed"

func (apkInstalled) Type() string { return TypeAPK }
func (apkInstalled) Version() int { return 1 }

func (apkInstalled) Required(p string, _ fs.FileInfo) bool { return p == pathAPKInstalled }

func (apkInstalled) Analyze(_ context.Context, in Input) (*Result, error) {
	pkgs, err := parseAPKInstalled(in.Content)
	if err != nil {
		return nil, fmt.Errorf("apk %s: %w", in.Path, err)
	}
	for i := range pkgs {
		pkgs[i].Location = Location{Layer: in.Layer, Path: in.Path}
	}
	return &Result{Packages: pkgs}, nil
}

// parseAPKInstalled parses the blank-line separated records of an apk
// database; each line is "X:value" with a one-letter key (P name, V
// version, o origin).
func parseAPKInstalled(b []byte) ([]Package, error) {
	var pkgs []Package
	var cur Package
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
				return nil, err
			}
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			return nil, fmt.Errorf("line %q is not a KEY:value field", truncate(line))
		}
		switch v := line[2:]; line[0] {
		case 'P':
			cur.Name = v
		case 'V':
			cur.Version = v
		case 'o':
			cur.SrcName = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return pkgs, nil
}
