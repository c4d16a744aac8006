package analyzer

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// bigPnpmLock is a pnpm 9 lock file of n packages, every one a production
// dependency of the root importer, with a comment and blank lines between
// entries as pnpm writes them.
func bigPnpmLock(n int) []byte {
	var b strings.Builder
	b.WriteString("lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n\nimporters:\n\n  .:\n    dependencies:\n")
	for i := range n {
		fmt.Fprintf(&b, "      pkg%d:\n        specifier: ^1.0.0\n        version: 1.0.%d\n", i, i)
	}
	b.WriteString("\npackages:\n")
	for i := range n {
		fmt.Fprintf(&b, "\n  pkg%d@1.0.%d:\n    resolution: {integrity: sha512-x%d}\n    # built\n", i, i, i)
	}
	b.WriteString("\nsnapshots:\n")
	for i := range n {
		fmt.Fprintf(&b, "\n  pkg%d@1.0.%d:\n    dependencies:\n      pkg%d: 1.0.%d\n", i, i, (i+1)%n, (i+1)%n)
	}
	return []byte(b.String())
}

// TestPnpmLockChunked: a lock file whose sections are larger than a chunk
// parses to exactly what one parse of the whole document gives, in pieces
// of at most yamlChunkEntries entries.
func TestPnpmLockChunked(t *testing.T) {
	for _, n := range []int{10, yamlChunkEntries, 3*yamlChunkEntries + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b := bigPnpmLock(n)
			docs, err := yamlSections(b)
			if err != nil {
				t.Fatal(err)
			}
			if want := 1; n > yamlChunkEntries {
				want = 1 + 2*((n+yamlChunkEntries-1)/yamlChunkEntries)
				if len(docs) != want {
					t.Fatalf("%d documents, want %d (the rest, packages and snapshots in chunks)", len(docs), want)
				}
			} else if len(docs) != want || string(docs[0].content) != string(b) {
				t.Fatalf("a lock file without a large section is parsed whole: %d documents", len(docs))
			}
			for _, d := range docs[1:] {
				if c := strings.Count(string(d.content), "\n  pkg"); c > yamlChunkEntries || !strings.HasPrefix(string(d.content), d.section+":\n") {
					t.Errorf("chunk of %s holds %d entries, want at most %d after its key", d.section, c, yamlChunkEntries)
				}
			}
			got, err := unmarshalPnpmLock(b)
			if err != nil {
				t.Fatal(err)
			}
			var whole pnpmLockFile
			if err := yaml.Unmarshal(b, &whole); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, whole) {
				t.Errorf("chunked parse differs from the whole document's: %d/%d packages, %d/%d snapshots",
					len(got.Packages), len(whole.Packages), len(got.Snapshots), len(whole.Snapshots))
			}
			res, err := jsLock{}.Analyze(context.Background(), Input{Path: "app/pnpm-lock.yaml", Content: b})
			if err != nil || len(res.Packages) != n {
				t.Fatalf("analyze: %v, %d packages, want %d", err, len(res.Packages), n)
			}
		})
	}
}

// TestYAMLSectionsRefusals: collections the chunks cannot split are
// bounded, and a large section that is not plain block YAML is refused,
// each naming where.
func TestYAMLSectionsRefusals(t *testing.T) {
	nested := "lockfileVersion: '9.0'\nsnapshots:\n  a@1.0.0:\n    dependencies:\n" + strings.Repeat("      x: 1.0.0\n", yamlMaxSiblings+1)
	top := "lockfileVersion: '9.0'\n" + strings.Repeat("k: 1\n", yamlMaxSiblings+1)
	docs := "lockfileVersion: '9.0'\n---\npackages:\n" + strings.Repeat("  a@1.0.0: {}\n", yamlChunkEntries+1)
	// many nested mappings, each under the bound, that together pass it
	var many strings.Builder
	many.WriteString("lockfileVersion: '9.0'\nsnapshots:\n")
	for i := range 5 {
		fmt.Fprintf(&many, "  a@1.0.%d:\n    dependencies:\n%s", i, strings.Repeat("      x: 1.0.0\n", yamlMaxSiblings/2+1))
	}
	for _, tt := range []struct{ name, in, want string }{
		{"nested mapping", nested, "the collection at line 5 ("},
		{"top level", top, "the collection at line 1 ("},
		// the fourth mapping of 10,001 entries (the first entry at line
		// 3 + 3×10,003 + 2) passes the bound
		{"many nested mappings", many.String(), "the collection at line 30014 ("},
		{"two documents", docs, "line 2: a document with more than 1000 entries in one section must be a single YAML document"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := jsLock{}.Analyze(context.Background(), Input{Path: "app/pnpm-lock.yaml", Content: []byte(tt.in)})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "app/pnpm-lock.yaml") ||
				(tt.name != "two documents" && !strings.Contains(err.Error(), "past the equivalent of one of 20000 entries: refused")) {
				t.Errorf("err = %v, want %q naming the file", err, tt.want)
			}
		})
	}
}

// BenchmarkPnpmLock parses lock files of 4,000 and 16,000 packages. On
// 2026-12-03 (shared 2-core machine, two interleaved rounds) one parse of
// the whole document took 1.09/1.14 s and 12.5/6.9 s, the chunks 0.89/0.93 s
// and 6.0/2.1 s; what remains above 4 times is the root importer's
// dependencies, one mapping of n entries, which the cost bound caps.
func BenchmarkPnpmLock(b *testing.B) {
	for _, n := range []int{4000, 16000} {
		in := Input{Path: "app/pnpm-lock.yaml", Content: bigPnpmLock(n)}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := (jsLock{}).Analyze(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestYarnBerryChunked: a yarn 2+ lock file of more entries than a chunk
// parses to what one parse of the whole document gives.
func TestYarnBerryChunked(t *testing.T) {
	n := 2*yamlChunkEntries + 3
	var b strings.Builder
	b.WriteString("# This file is generated by running \"yarn install\" inside your project.\n\n__metadata:\n  version: 6\n  cacheKey: 8\n\n")
	for i := range n {
		fmt.Fprintf(&b, "\"pkg%d@npm:^1.0.%d\":\n  version: 1.0.%d\n  resolution: \"pkg%d@npm:1.0.%d\"\n  dependencies:\n    pkg%d: \"npm:^1.0.%d\"\n  linkType: hard\n\n",
			i, i, i, i, i, (i+1)%n, (i+1)%n)
	}
	content := []byte(b.String())
	chunks, err := yamlTopChunks(content)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3; len(chunks) != want {
		t.Fatalf("%d chunks, want %d", len(chunks), want)
	}
	var whole map[string]yarnBerryEntry
	if err := yaml.Unmarshal(content, &whole); err != nil {
		t.Fatal(err)
	}
	var got map[string]yarnBerryEntry
	for _, c := range chunks {
		var part map[string]yarnBerryEntry
		if err := yaml.Unmarshal(c, &part); err != nil {
			t.Fatal(err)
		}
		if err := mergeMap(&got, part, "the top level"); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(got, whole) || len(got) != n+1 {
		t.Fatalf("chunked parse: %d entries, whole: %d, want %d and equal", len(got), len(whole), n+1)
	}
	res, err := jsLock{}.Analyze(context.Background(), Input{Path: "app/yarn.lock", Content: content})
	if err != nil || len(res.Packages) != n {
		t.Fatalf("analyze: %v, %d packages, want %d", err, len(res.Packages), n)
	}
	// a duplicate key across chunks is refused as within one
	dup := append(append([]byte{}, content...), "\"pkg0@npm:^1.0.0\":\n  version: 1.0.0\n"...)
	if _, err := (jsLock{}).Analyze(context.Background(), Input{Path: "app/yarn.lock", Content: dup}); err == nil || !strings.Contains(err.Error(), `mapping key "pkg0@npm:^1.0.0" already defined`) {
		t.Errorf("duplicate entry: %v", err)
	}
}
