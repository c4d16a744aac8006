package analyzer

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func zlibBytes(t testing.TB, s string) []byte {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// auditableSample is the shape cargo-auditable writes: the root crate,
// its runtime dependencies by index, a build-time one and a local one.
const auditableSample = `{"packages":[
 {"name":"rustapp","version":"0.1.0","source":"local","dependencies":[1,2,3,4],"root":true},
 {"name":"cc","version":"1.0.73","source":"crates.io","kind":"build"},
 {"name":"helper","version":"0.1.0","source":"local"},
 {"name":"log","version":"0.4.14","source":"crates.io"},
 {"name":"smallvec","version":"1.6.0","source":"crates.io","kind":"runtime"}]}`

func TestAuditableDeps(t *testing.T) {
	got, err := parseAuditableDeps(zlibBytes(t, auditableSample))
	if err != nil {
		t.Fatal(err)
	}
	if want := [][2]string{{"log", "0.4.14"}, {"smallvec", "1.6.0"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, tt := range []struct {
		raw  []byte
		want string
	}{
		{[]byte("not zlib"), "zlib:"},
		{zlibBytes(t, `{"packages":[{"name":"x"}]}`), "packages[0]: no name or version"},
		{zlibBytes(t, "{\n\"packages\": 7}"), "line 2:"},
		{zlibBytes(t, `{"packages":[`+strings.Repeat(" ", maxAuditableJSON)+`]}`), "larger than 16 MiB"},
	} {
		if _, err := parseAuditableDeps(tt.raw); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
}

// TestAuditableNotApplicable: executables without the section, and other
// files, are not cargo-auditable's.
func TestAuditableNotApplicable(t *testing.T) {
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	elfBytes, err := os.ReadFile(trueBin)
	if err != nil {
		t.Fatal(err)
	}
	for _, content := range [][]byte{elfBytes, []byte("#!/bin/sh\necho hi\n"), []byte("\x7fELF garbage")} {
		_, err := cargoAuditable{}.Analyze(context.Background(), Input{Path: "usr/bin/x", Content: content})
		if !errors.Is(err, ErrNotApplicable) {
			t.Errorf("err = %v, want ErrNotApplicable", err)
		}
	}
}

func FuzzAuditableDeps(f *testing.F) {
	f.Add(zlibBytes(f, auditableSample))
	f.Add(zlibBytes(f, `{"packages":[]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		deps, err := parseAuditableDeps(raw)
		if err != nil {
			return
		}
		for _, d := range deps {
			if d[0] == "" || d[1] == "" {
				t.Fatalf("empty dependency %q", d)
			}
		}
	})
}
