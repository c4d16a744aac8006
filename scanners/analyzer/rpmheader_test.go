package analyzer

import (
	"database/sql"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"

	"github.com/taskguard/taskguard/internal/testenv"
)

// goRPMDBDatabases are the rpm databases of go-rpmdb's testdata: Berkeley
// DB (CentOS 5 to 8, UBI 8 on s390x, big-endian), NDB (SLE 15) and SQLite
// (Fedora 35, CBL-Mariner 2).
func goRPMDBDatabases(t *testing.T) []string {
	t.Helper()
	var dbs []string
	for _, pattern := range []string{"*/Packages", "*/Packages.db", "*/rpmdb.sqlite"} {
		m, err := filepath.Glob(filepath.Join(goRPMDBTestdata(t), pattern))
		if err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, m...)
	}
	if len(dbs) < 15 {
		t.Fatalf("only %d databases in go-rpmdb's testdata: %q", len(dbs), dbs)
	}
	return dbs
}

// TestRPMDBTestdataPasses: every database of go-rpmdb's testdata passes the
// pre-check (headers included), and readRPMDB lists as many packages as
// go-rpmdb does on its own.
func TestRPMDBTestdataPasses(t *testing.T) {
	for _, p := range goRPMDBDatabases(t) {
		t.Run(filepath.Base(filepath.Dir(p)), func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkRPMDB(p, b); err != nil {
				t.Fatalf("refused: %v", err)
			}
			db, err := rpmdb.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			infos, err := db.ListPackages()
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, pi := range infos {
				if pi.Name != "gpg-pubkey" {
					want++
				}
			}
			pkgs, _, err := readRPMDB(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkgs) != want || want == 0 {
				t.Errorf("%d packages, go-rpmdb lists %d", len(pkgs), want)
			}
		})
	}
}

// firstRPMHeader returns the file offsets of the bytes of the first package
// header of a Berkeley DB or NDB database, in order (a Berkeley DB header
// spans overflow pages).
func firstRPMHeader(t testing.TB, b []byte) []int {
	t.Helper()
	var at []int
	if binary.LittleEndian.Uint32(b) == ndbMagic {
		for i := 0; ; i++ {
			s := b[32+i*16:]
			if binary.LittleEndian.Uint32(s[4:]) == 0 {
				continue
			}
			off := int(binary.LittleEndian.Uint32(s[8:])) * 16
			for j := range int(binary.LittleEndian.Uint32(b[off+12:])) {
				at = append(at, off+16+j)
			}
			return at
		}
	}
	order := binary.ByteOrder(binary.LittleEndian)
	if binary.LittleEndian.Uint32(b[12:]) != bdbHashMagic {
		order = binary.BigEndian
	}
	ps := int(order.Uint32(b[20:]))
	for n := 1; (n+1)*ps <= len(b); n++ {
		page := b[n*ps : (n+1)*ps]
		if page[25] != 13 && page[25] != 2 {
			continue
		}
		for k := 1; k < int(order.Uint16(page[20:])); k += 2 {
			v := int(order.Uint16(page[26+k*2:]))
			if page[v] != 3 {
				continue
			}
			for next := int(order.Uint32(page[v+4:])); next != 0; {
				o := next * ps
				next = int(order.Uint32(b[o+16:]))
				n := ps - 26
				if next == 0 {
					n = int(order.Uint16(b[o+22:]))
				}
				for j := range n {
					at = append(at, o+26+j)
				}
			}
			return at
		}
	}
	t.Fatal("no package header in the database")
	return nil
}

// rpmHeaderEdit changes a package header blob in place (its length stays).
type rpmHeaderEdit func(t *testing.T, h []byte)

// rpmHeaderEntry returns the index of the first entry of h with tag.
func rpmHeaderEntry(t *testing.T, h []byte, tag int32) int {
	t.Helper()
	il := int(binary.BigEndian.Uint32(h))
	for i := range il {
		if int32(binary.BigEndian.Uint32(h[8+16*i:])) == tag {
			return i
		}
	}
	t.Fatalf("no tag %d in the header", tag)
	return 0
}

// rpmHeaderEdits are ways a header breaks go-rpmdb's headerImport or
// getNEVRA (one of them a panic), and two that break rpm's checks
// go-rpmdb lost (it accepts them), each with what the error must say.
var rpmHeaderEdits = []struct {
	name, want string
	edit       rpmHeaderEdit
}{
	// il says more entries than the blob holds (go-rpmdb allocates them
	// all, then refuses the zero entries past the blob).
	{"il-too-large", "index entries (il)", func(t *testing.T, h []byte) {
		binary.BigEndian.PutUint32(h, uint32(len(h)/16+1))
	}},
	// dl says more data than the blob holds.
	{"dl-too-large", "data bytes (dl)", func(t *testing.T, h []byte) {
		binary.BigEndian.PutUint32(h[4:], uint32(len(h)))
	}},
	// The region tag (entry 0) is not of the binary type.
	{"region-tag-type", "region tag 63: type 4", func(t *testing.T, h []byte) {
		binary.BigEndian.PutUint32(h[8+4:], 4)
	}},
	// The region trailer claims more index entries than there are.
	{"region-trailer", "trailer claims", func(t *testing.T, h []byte) {
		il := binary.BigEndian.Uint32(h)
		trailer := 8 + 16*il + binary.BigEndian.Uint32(h[8+8:])
		binary.BigEndian.PutUint32(h[trailer+8:], uint32(-int32(16*(il+1))))
	}},
	// The region trailer claims no entry: go-rpmdb slices [1:0] and
	// panics (in ListPackages; recovered, but its reader stays blocked).
	{"region-trailer-zero", "trailer claims no entry", func(t *testing.T, h []byte) {
		il := binary.BigEndian.Uint32(h)
		trailer := 8 + 16*il + binary.BigEndian.Uint32(h[8+8:])
		binary.BigEndian.PutUint32(h[trailer+8:], 0)
	}},
	// The name's data offset is past the data.
	{"entry-offset", "data at 2147483632, outside", func(t *testing.T, h []byte) {
		binary.BigEndian.PutUint32(h[8+16*rpmHeaderEntry(t, h, 1000)+8:], 0x7ffffff0)
	}},
	// The name is a string array (same length, same data): getNEVRA
	// insists on a string.
	{"nevra-type", "(tag 1000): type 8, want 6", func(t *testing.T, h []byte) {
		binary.BigEndian.PutUint32(h[8+16*rpmHeaderEntry(t, h, 1000)+4:], 8) // a string array
	}},
	// The epoch or size, an int32 getNEVRA reads, is a string.
	{"nevra-int32-type", "(tag 1009): type 6, want 4", func(t *testing.T, h []byte) {
		binary.BigEndian.PutUint32(h[8+16*rpmHeaderEntry(t, h, 1009)+4:], 6) // a string
	}},
	// The version's data starts where the name's does: go-rpmdb's check
	// of overlaps compares with a shadowed variable, and it reads an
	// empty name and a version of "name\x00version"; rpm refuses it, as
	// we do (entries whose data overlap could make go-rpmdb scan the
	// same bytes once per entry).
	{"entries-overlap", "(tag 1001): data at ", func(t *testing.T, h []byte) {
		name := 8 + 16*rpmHeaderEntry(t, h, 1000)
		copy(h[name+16+8:name+16+12], h[name+8:name+12])
	}},
	// The base names claim more strings than the data holds: go-rpmdb
	// scans the rest of the data once per missing string (up to 2³²
	// times) and then accepts the header; rpm refuses it, as we do.
	{"strings-missing", "values of type 8", func(t *testing.T, h []byte) {
		e := h[8+16*rpmHeaderEntry(t, h, 1117):]
		binary.BigEndian.PutUint32(e[12:], uint32(len(h)))
	}},
}

// badHeaderDB returns the database file b with its first package header
// edited: in place for Berkeley DB and NDB, with an UPDATE of a copy for
// SQLite.
func badHeaderDB(t *testing.T, src string, edit rpmHeaderEdit) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(src))
	if !strings.HasSuffix(src, ".sqlite") {
		at := firstRPMHeader(t, b)
		h := make([]byte, len(at))
		for i, o := range at {
			h[i] = b[o]
		}
		edit(t, h)
		for i, o := range at {
			b[o] = h[i]
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var h []byte
	if err := db.QueryRow("SELECT blob FROM Packages ORDER BY hnum LIMIT 1").Scan(&h); err != nil {
		t.Fatal(err)
	}
	edit(t, h)
	if _, err := db.Exec("UPDATE Packages SET blob = ? WHERE hnum = (SELECT min(hnum) FROM Packages)", h); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRPMDBBadHeader: real databases (go-rpmdb's testdata, each format)
// whose first package header is broken in one way go-rpmdb checks are
// refused, with an error naming the entry and what is wrong, and leave no
// goroutine and no file behind. Before, ListPackages returned at the
// header and go-rpmdb's reader goroutine blocked for ever.
func TestRPMDBBadHeader(t *testing.T) {
	dir := goRPMDBTestdata(t)
	dbs := []struct{ name, path, where string }{
		{"bdb", filepath.Join(dir, "centos7-plain", "Packages"), "berkeley db: page "},
		{"bdb-be", filepath.Join(dir, "ubi8-s390x", "Packages"), "berkeley db: page "},
		{"ndb", filepath.Join(dir, "sle15-bci", "Packages.db"), "ndb database: slot "},
		{"sqlite", filepath.Join(dir, "fedora35", "rpmdb.sqlite"), "sqlite database: package row 1: header: "},
	}
	for _, db := range dbs {
		for _, tc := range rpmHeaderEdits {
			t.Run(db.name+"/"+tc.name, func(t *testing.T) {
				p := badHeaderDB(t, db.path, tc.edit)
				err := checkRefused(t, p)
				if !strings.Contains(err.Error(), db.where) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q does not say %q and %q", err, db.where, tc.want)
				}
			})
		}
	}
}

// checkRefused reads the database at p with readRPMDB, which must refuse
// it and leave no goroutine and no open file behind; it returns the error.
func checkRefused(t *testing.T, p string) error {
	t.Helper()
	fds, before := testenv.OpenFDs(t), goroutineStacks()
	pkgs, _, err := readRPMDB(p)
	if err == nil || len(pkgs) != 0 {
		t.Fatalf("%d packages, error %v", len(pkgs), err)
	}
	if !strings.Contains(err.Error(), "rpm database") {
		t.Errorf("error %q does not say what it read", err)
	}
	for id, stack := range goroutineStacks() {
		// database/sql's connection opener ends in the background once
		// its database is closed (a database left open holds its file,
		// which the count of open files catches).
		if _, old := before[id]; !old && !strings.Contains(stack, "database/sql.(*DB).connectionOpener") &&
			!strings.Contains(stack, "database/sql.OpenDB.gowrap") {
			t.Errorf("a goroutine left running (%v):\n%s", err, stack)
		}
	}
	if n := testenv.OpenFDs(t); n > fds {
		t.Errorf("%d files left open (%v)", n-fds, err)
	}
	return err
}

// goroutineStacks returns every goroutine's stack by its id, but the
// caller's.
func goroutineStacks() map[string]string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	stacks := map[string]string{}
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 { // the caller
			continue
		}
		if id, _, ok := strings.Cut(strings.TrimPrefix(g, "goroutine "), " "); ok {
			stacks[id] = g
		}
	}
	return stacks
}

// BenchmarkRPMDB reads real databases of each format (go-rpmdb's
// testdata): "check" is the pre-check alone (checkRPMDB on the file's
// bytes), "read" all of readRPMDB (reading the file, the pre-check,
// go-rpmdb): check/read is the pre-check's share of a scan. The
// scanners README says how it compared this code with main's.
func BenchmarkRPMDB(b *testing.B) {
	dir := goRPMDBTestdata(b)
	for _, db := range []struct{ name, path string }{
		{"bdb", filepath.Join(dir, "centos7-plain", "Packages")},
		{"ndb", filepath.Join(dir, "sle15-bci", "Packages.db")},
		{"sqlite", filepath.Join(dir, "fedora35", "rpmdb.sqlite")},
	} {
		content, err := os.ReadFile(db.path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(db.name+"/check", func(b *testing.B) {
			b.SetBytes(int64(len(content)))
			for b.Loop() {
				if err := checkRPMDB(db.path, content); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(db.name+"/read", func(b *testing.B) {
			b.SetBytes(int64(len(content)))
			for b.Loop() {
				if _, _, err := readRPMDB(db.path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRPMNDBOneHeader: FuzzRPMDB's seed of one real header in a minimal NDB
// database reads as that one package (the fuzzer starts from a header
// both the pre-check and go-rpmdb accept).
func TestRPMNDBOneHeader(t *testing.T) {
	p := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(p, ndbWithHeader(t, filepath.Join(goRPMDBTestdata(t), "sle15-bci", "Packages.db")), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgs, _, err := readRPMDB(p)
	if err != nil || len(pkgs) != 1 || pkgs[0].Name == "" || pkgs[0].Version == "" {
		t.Fatalf("%+v, %v", pkgs, err)
	}
}
