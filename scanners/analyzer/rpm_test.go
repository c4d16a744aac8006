package analyzer

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/internal/testenv"
)

// rpmQuery lists the packages of an rpm database with rpm itself, in the
// analyzer's "name epoch:version-release source" form.
func rpmQuery(t *testing.T, dbpath, backend string) []string {
	t.Helper()
	out, err := exec.Command("rpm", "-qa", "--dbpath", dbpath, "--define", "_db_backend "+backend,
		"--qf", `%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE} %{SOURCERPM}\n`).Output()
	if err != nil {
		t.Fatalf("rpm -qa: %v", err)
	}
	var pkgs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" || strings.HasPrefix(line, "gpg-pubkey ") {
			continue
		}
		pkgs = append(pkgs, strings.Replace(line, " 0:", " ", 1))
	}
	sort.Strings(pkgs)
	return pkgs
}

func analyzeRPM(t *testing.T, file, as string) []string {
	t.Helper()
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	a := rpmDB{}
	if !a.Required(as, nil) {
		t.Fatalf("%s not required", as)
	}
	res, err := a.Analyze(context.Background(), Input{Path: as, Content: content})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Packages {
		src := "(none)"
		if p.SrcName != "" {
			v := p.SrcVersion
			if i := strings.IndexByte(v, ':'); i >= 0 {
				v = v[i+1:]
			}
			src = p.SrcName + "-" + v + ".src.rpm"
		}
		got = append(got, p.Name+" "+p.Version+" "+src)
	}
	sort.Strings(got)
	return got
}

func goRPMDBTestdata(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/knqyf263/go-rpmdb").Output()
	if err != nil {
		testenv.Skip(t, "go list go-rpmdb: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "pkg", "testdata")
}

// TestRPMSQLiteMatchesRPM installs a package built with rpmbuild into a
// fresh SQLite rpm database and compares the analyzer with rpm -qa.
func TestRPMSQLiteMatchesRPM(t *testing.T) {
	for _, tool := range []string{"rpm", "rpmbuild"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skip(t, "%s not installed (scripts/install-deps.sh installs rpm)", tool)
		}
	}
	dir := t.TempDir()
	spec := filepath.Join(dir, "t.spec")
	if err := os.WriteFile(spec, []byte("Name: tgtest\nVersion: 1.2.3\nRelease: 4.el9\nEpoch: 2\nSummary: t\nLicense: MIT\nBuildArch: noarch\n%description\nt\n%files\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(dir, "top")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("rpmbuild", "-bb", "--quiet", "--define", "_topdir "+top, spec)
	db := filepath.Join(dir, "db")
	if err := os.MkdirAll(db, 0o755); err != nil {
		t.Fatal(err)
	}
	run("rpm", "--dbpath", db, "--define", "_db_backend sqlite", "--initdb")
	run("rpm", "-i", "--justdb", "--nodeps", "--noscripts", "--dbpath", db, "--define", "_db_backend sqlite",
		filepath.Join(top, "RPMS", "noarch", "tgtest-1.2.3-4.el9.noarch.rpm"))
	want := rpmQuery(t, db, "sqlite")
	got := analyzeRPM(t, filepath.Join(db, "rpmdb.sqlite"), "usr/lib/sysimage/rpm/rpmdb.sqlite")
	if len(want) != 1 || !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, rpm -qa %q", got, want)
	}
	if got[0] != "tgtest 2:1.2.3-4.el9 tgtest-1.2.3-4.el9.src.rpm" {
		t.Errorf("package = %q", got[0])
	}
}

// TestRPMBerkeleyDBMatchesRPM reads a CentOS 7 Berkeley DB (go-rpmdb's test
// data) and compares the analyzer with rpm -qa.
func TestRPMBerkeleyDBMatchesRPM(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		testenv.Skip(t, "rpm not installed (scripts/install-deps.sh installs it)")
	}
	dir := filepath.Join(goRPMDBTestdata(t), "centos7-plain")
	want := rpmQuery(t, dir, "bdb_ro")
	got := analyzeRPM(t, filepath.Join(dir, "Packages"), "var/lib/rpm/Packages")
	if len(want) < 100 || !reflect.DeepEqual(got, want) {
		t.Errorf("got %d packages, rpm -qa %d\n got %q\nwant %q", len(got), len(want), got, want)
	}
	// The files the packages own, as rpm -qal lists them.
	out, err := exec.Command("rpm", "-qal", "--dbpath", dir, "--define", "_db_backend bdb_ro").Output()
	if err != nil {
		t.Fatal(err)
	}
	_, owned, err := readRPMDB(filepath.Join(dir, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := map[string]bool{}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if p := ownedPath(f); p != "" && f != "(contains no files)" {
			wantFiles[p] = true
		}
	}
	gotFiles := map[string]bool{}
	for _, f := range owned {
		gotFiles[f] = true
	}
	if len(wantFiles) < 1000 || !reflect.DeepEqual(gotFiles, wantFiles) {
		t.Errorf("owned files: got %d, rpm -qal %d", len(gotFiles), len(wantFiles))
	}
}

// TestRPMNDB reads a SUSE NDB database (go-rpmdb's test data); Debian's rpm
// cannot read NDB, so only its shape is checked.
func TestRPMNDB(t *testing.T) {
	got := analyzeRPM(t, filepath.Join(goRPMDBTestdata(t), "sle15-bci", "Packages.db"), "var/lib/rpm/Packages.db")
	if len(got) < 10 {
		t.Fatalf("only %d packages: %q", len(got), got)
	}
	for _, p := range got {
		if f := strings.Fields(p); len(f) != 3 || !strings.Contains(f[1], "-") || !strings.HasSuffix(f[2], ".src.rpm") {
			t.Errorf("malformed package %q", p)
		}
	}
}

func TestSplitSourceRPM(t *testing.T) {
	tests := []struct{ in, name, ver, rel string }{
		{"openssl-1.0.2k-19.el7.src.rpm", "openssl", "1.0.2k", "19.el7"},
		{"python3-pip-21.2.3-7.el9.src.rpm", "python3-pip", "21.2.3", "7.el9"},
		{"broken.src.rpm", "", "", ""},
		{"no-suffix-1-2", "", "", ""},
	}
	for _, tt := range tests {
		n, v, r, _ := splitSourceRPM(tt.in)
		if n != tt.name || v != tt.ver || r != tt.rel {
			t.Errorf("splitSourceRPM(%s) = %s %s %s", tt.in, n, v, r)
		}
	}
}

// boundMinimize sets -fuzzminimizetime to 2s when it was not given: Go's
// default is 60 s with up to len(input)² runs of the target, and a run
// of FuzzRPMDB (SQLite opening a file) takes milliseconds. It is read
// when f.Fuzz starts the fuzzing, so a fuzz target calls it first.
func boundMinimize(f *testing.F) {
	given := false
	flag.Visit(func(fl *flag.Flag) { given = given || fl.Name == "test.fuzzminimizetime" })
	if given {
		return
	}
	if err := flag.Set("test.fuzzminimizetime", "2s"); err != nil {
		f.Fatal(err)
	}
}

// fuzzRPMDBMax bounds FuzzRPMDB's inputs (the fuzzer minimizes every new
// input by running it up to len(input)² times): a database of a few pages.
const fuzzRPMDBMax = 64 << 10

// FuzzRPMDB: no input makes readRPMDB panic or hang, and none the
// pre-check passes makes go-rpmdb's ListPackages fail. Each run writes its
// own file in its own directory: fuzz workers are processes running at
// once, and they shared one path (SQLite then waited on another
// worker's lock, or rolled back a journal another run left).
func FuzzRPMDB(f *testing.F) {
	boundMinimize(f)
	f.Add([]byte("SQLite format 3\x00"))
	f.Add([]byte{0x00, 0x06, 0x15, 0x61, 0, 0, 0, 0})
	f.Add([]byte("RpmP"))
	// The databases go-rpmdb loops, panics, over-allocates or leaks on
	// are in testdata/fuzz/FuzzRPMDB too (hostileRPMDBs).
	for _, tc := range hostileRPMDBs() {
		f.Add(tc.b)
	}
	// A real package header (SUSE's, from go-rpmdb's NDB test database)
	// in an NDB database of one slot: the fuzzer starts from a header the
	// pre-check and go-rpmdb read, as well as from broken structures.
	f.Add(ndbWithHeader(f, filepath.Join(goRPMDBTestdata(f), "sle15-bci", "Packages.db")))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Cut, not skipped (an early return would be new coverage, which
		// the fuzzer minimizes for up to 60 s).
		b = b[:min(len(b), fuzzRPMDBMax)]
		p := filepath.Join(t.TempDir(), "db")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// What the pre-check passes, go-rpmdb lists to the end: an error
		// of ListPackages (or a panic) left its reader goroutine blocked.
		if _, _, err := readRPMDB(p); err != nil && (strings.HasPrefix(err.Error(), "list rpm packages") || strings.Contains(err.Error(), "runtime error")) {
			t.Errorf("the pre-check passed a database go-rpmdb stops on: %v", err)
		}
	})
}

// bdbPages returns a little-endian Berkeley DB hash database of 512-byte
// pages: the metadata page, then a hash page whose one value is stored
// off-page at page 2, then page 2 as edit makes it (and more pages).
func bdbPages(valueAt int, pages int, edit func(p [][]byte)) []byte {
	p := make([][]byte, pages)
	for i := range p {
		p[i] = make([]byte, 512)
	}
	binary.LittleEndian.PutUint32(p[0][12:], 0x00061561)
	binary.LittleEndian.PutUint32(p[0][20:], 512)
	p[0][25] = 8
	binary.LittleEndian.PutUint32(p[0][32:], uint32(pages-1))
	binary.LittleEndian.PutUint32(p[1][8:], 1)
	binary.LittleEndian.PutUint16(p[1][20:], 2)
	p[1][25] = 13
	binary.LittleEndian.PutUint16(p[1][26:], 400)
	binary.LittleEndian.PutUint16(p[1][28:], uint16(valueAt))
	if valueAt < 512 {
		p[1][valueAt] = 3
		if valueAt+8 <= 512 {
			binary.LittleEndian.PutUint32(p[1][valueAt+4:], 2)
		}
	}
	binary.LittleEndian.PutUint32(p[2][8:], 2)
	p[2][25] = 7
	edit(p)
	return bytes.Join(p, nil)
}

// ndbBlob returns an NDB database of one slot page whose first slot's
// blob header claims blobLen bytes.
func ndbBlob(blobLen uint32) []byte {
	b := make([]byte, 4096+16+64)
	binary.LittleEndian.PutUint32(b, 'R'|'p'<<8|'m'<<16|'P'<<24)
	binary.LittleEndian.PutUint32(b[12:], 1)
	for i := range 254 {
		binary.LittleEndian.PutUint32(b[32+i*16:], 'S'|'l'<<8|'o'<<16|'t'<<24)
	}
	binary.LittleEndian.PutUint32(b[32+4:], 1)   // package 1
	binary.LittleEndian.PutUint32(b[32+8:], 256) // at 256 × 16
	binary.LittleEndian.PutUint32(b[4096:], 'B'|'l'<<8|'b'<<16|'S'<<24)
	binary.LittleEndian.PutUint32(b[4096+4:], 1)
	binary.LittleEndian.PutUint32(b[4096+12:], blobLen)
	return b
}

// ndbWithHeader returns an NDB database of one slot page whose one
// package is the first package header of the NDB database at p.
func ndbWithHeader(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	at := firstRPMHeader(t, b)
	h := b[at[0] : at[0]+len(at)]
	return append(ndbBlob(uint32(len(h)))[:4096+16], h...)
}

// hostileRPMDBs are databases go-rpmdb v0.1.1 loops on for ever, panics
// on outside our goroutine, allocates gigabytes for, or leaks its file or
// reader goroutine on: readRPMDB refuses them before go-rpmdb reads them.
func hostileRPMDBs() []struct {
	name string
	b    []byte
} {
	return []struct {
		name string
		b    []byte
	}{
		// HashPageValueContent's loop does not advance past a page that
		// is not an overflow page: it reads page 2 for ever.
		{"bdb-chain-to-hash-page", bdbPages(450, 3, func(p [][]byte) { p[2][25] = 13 })},
		// Page 2 is its own next overflow page: the value grows for ever.
		{"bdb-chain-cycle", bdbPages(450, 3, func(p [][]byte) { binary.LittleEndian.PutUint32(p[2][16:], 2) })},
		// The value's offset is the page's last byte: its 12-byte entry
		// is sliced past the page (a panic in go-rpmdb's goroutine).
		{"bdb-entry-past-page", bdbPages(511, 3, func([][]byte) {})},
		// Two values share one overflow chain: go-rpmdb reads it once for
		// each (with long chains, work quadratic in the file).
		{"bdb-shared-chain", bdbPages(450, 3, func(p [][]byte) {
			binary.LittleEndian.PutUint16(p[1][20:], 4)
			binary.LittleEndian.PutUint16(p[1][30:], 420)
			binary.LittleEndian.PutUint16(p[1][32:], 470)
			p[1][470] = 3
			binary.LittleEndian.PutUint32(p[1][474:], 2)
		})},
		// The last overflow page says more bytes are used than it holds.
		{"bdb-overflow-used", bdbPages(450, 3, func(p [][]byte) { binary.LittleEndian.PutUint16(p[2][22:], 600) })},
		// More hash index entries than the page holds.
		{"bdb-entries", bdbPages(450, 3, func(p [][]byte) { binary.LittleEndian.PutUint16(p[1][20:], 1000) })},
		// The metadata page says there are more pages than the file holds.
		{"bdb-last-page", bdbPages(450, 3, func(p [][]byte) { binary.LittleEndian.PutUint32(p[0][32:], 1<<30) })},
		// A 4 GiB blob in a 4 KiB file.
		{"ndb-blob-len", ndbBlob(0xfffffff0)},
		// Not a database: go-rpmdb's NDB and Berkeley DB Open leave the
		// file open.
		{"not-a-db", []byte("0000000000000000000000000000000000000000")},
		// SQLite without a Packages table: go-rpmdb's reader blocks for
		// ever on the query's error, holding the connection.
		{"sqlite-no-table", sqliteNoPackages()},
	}
}

// sqliteNoPackages is an empty SQLite database of one page.
func sqliteNoPackages() []byte {
	b := make([]byte, 512)
	copy(b, "SQLite format 3\x00")
	binary.BigEndian.PutUint16(b[16:], 512)
	b[18], b[19] = 1, 1
	b[21], b[22], b[23] = 64, 32, 32
	binary.BigEndian.PutUint32(b[28:], 1)
	binary.BigEndian.PutUint32(b[44:], 4)
	binary.BigEndian.PutUint32(b[56:], 1)
	b[100] = 13 // an empty table leaf page: sqlite_schema
	binary.BigEndian.PutUint16(b[105:], 512)
	return b
}

// TestRPMDBHostile: each hostile database is refused with an error, and
// leaves no goroutine and no open file behind (before, the first three
// never returned, or killed the test binary).
func TestRPMDBHostile(t *testing.T) {
	for _, tc := range hostileRPMDBs() {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "db")
			if err := os.WriteFile(p, tc.b, 0o644); err != nil {
				t.Fatal(err)
			}
			checkRefused(t, p)
		})
	}
}
