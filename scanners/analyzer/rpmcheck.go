package analyzer

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
)

// go-rpmdb (knqyf263/go-rpmdb v0.1.1) trusts the database it reads:
//   - its NDB and Berkeley DB Open leave the file open (an NDB one locked)
//     on every error, and every file that is not SQLite goes through both;
//   - its readers run in a goroutine that sends each entry on an
//     unbuffered channel: when ListPackages returns at the first bad entry,
//     that goroutine blocks for ever, holding the file (or, for SQLite, the
//     query's connection);
//   - Berkeley DB: an overflow chain that reaches a page of another type,
//     or loops, never ends (the first reads the same page for ever, the
//     second grows a buffer for ever); hash page offsets index the page
//     unchecked, so they panic in that goroutine, which no recover of ours
//     reaches: the process dies;
//   - NDB: a blob's length is allocated as the header says (up to 4 GiB).
//
// checkRPMDB walks the database as go-rpmdb will, within the bytes there
// are, before go-rpmdb sees it: a database it would fail on, loop on or
// panic on is refused here. Its work is linear in len(b) (every page is
// read at most once per walk; an overflow chain visits a page once).
// Errors in package headers (go-rpmdb's header parsing, in our goroutine)
// are still go-rpmdb's: each such database leaves one blocked goroutine.
func checkRPMDB(path string, b []byte) error {
	switch {
	case bytes.HasPrefix(b, []byte("SQLite format 3\x00")):
		return checkRPMSQLite(path)
	case len(b) >= 4 && binary.LittleEndian.Uint32(b) == ndbMagic:
		return checkNDB(b)
	case len(b) >= 16 && (binary.LittleEndian.Uint32(b[12:]) == bdbHashMagic || binary.BigEndian.Uint32(b[12:]) == bdbHashMagic):
		return checkBDB(b)
	}
	return errors.New("not an rpm database (no SQLite, NDB or Berkeley DB hash header)")
}

const (
	ndbMagic     = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbBlobMagic = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	bdbHashMagic = 0x00061561
)

// checkNDB checks an NDB Packages.db as go-rpmdb's ndb.Open and Read
// read it: the header, every slot, every used slot's blob in the file.
func checkNDB(b []byte) error {
	if len(b) < 32 {
		return errors.New("ndb database: truncated header")
	}
	version, npages := binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[12:])
	if version != 0 || npages == 0 || npages > 2048 {
		return fmt.Errorf("ndb database: version %d, %d slot pages", version, npages)
	}
	nslots := int(npages)*256 - 2
	if 32+nslots*16 > len(b) {
		return fmt.Errorf("ndb database: %d slots in %d bytes", nslots, len(b))
	}
	for i := range nslots {
		s := b[32+i*16:]
		if binary.LittleEndian.Uint32(s) != ndbSlotMagic {
			return fmt.Errorf("ndb database: slot %d: bad magic", i)
		}
		pkg, off := binary.LittleEndian.Uint32(s[4:]), int64(binary.LittleEndian.Uint32(s[8:]))*16
		if pkg == 0 {
			continue
		}
		if off+16 > int64(len(b)) {
			return fmt.Errorf("ndb database: slot %d: blob beyond the file", i)
		}
		h := b[off:]
		if binary.LittleEndian.Uint32(h) != ndbBlobMagic || binary.LittleEndian.Uint32(h[4:]) != pkg {
			return fmt.Errorf("ndb database: slot %d: bad blob header", i)
		}
		if off+16+int64(binary.LittleEndian.Uint32(h[12:])) > int64(len(b)) {
			return fmt.Errorf("ndb database: slot %d: blob beyond the file", i)
		}
	}
	return nil
}

// checkBDB checks a Berkeley DB hash database as go-rpmdb's bdb.Open and
// Read read it: the metadata page, every page up to the last, every
// hash page's index, every overflow chain (each of the overflow type,
// within the file, and each overflow page in one chain once: a page two
// values share, or a chain that loops, is refused, so that go-rpmdb reads
// at most every page once more).
func checkBDB(b []byte) error {
	order := binary.ByteOrder(binary.LittleEndian)
	if binary.LittleEndian.Uint32(b[12:]) != bdbHashMagic {
		order = binary.BigEndian
	}
	if len(b) < 72 {
		return errors.New("berkeley db: truncated metadata page")
	}
	if b[24] != 0 || b[25] != 8 { // no encryption, a hash metadata page
		return fmt.Errorf("berkeley db: encryption %d, page type %d", b[24], b[25])
	}
	pageSize, last := order.Uint32(b[20:]), order.Uint32(b[32:])
	switch pageSize {
	case 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536:
	default:
		return fmt.Errorf("berkeley db: page size %d", pageSize)
	}
	ps := int(pageSize)
	pages := len(b) / ps
	if int64(last) >= int64(pages) {
		return fmt.Errorf("berkeley db: last page %d of %d", last, pages)
	}
	visited := make([]bool, pages)
	for n := 0; n <= int(last); n++ {
		page := b[n*ps : (n+1)*ps]
		if t := page[25]; t != 2 && t != 13 { // hash pages; others are skipped
			continue
		}
		entries := int(order.Uint16(page[20:]))
		if entries%2 != 0 || 26+entries*2 > ps {
			return fmt.Errorf("berkeley db: page %d: %d entries", n, entries)
		}
		for k := 1; k < entries; k += 2 { // values, after their keys
			at := int(order.Uint16(page[26+k*2:]))
			if at >= ps {
				return fmt.Errorf("berkeley db: page %d: entry at %d", n, at)
			}
			if page[at] != 3 { // only off-page values are read
				continue
			}
			if at+12 > ps {
				return fmt.Errorf("berkeley db: page %d: entry at %d", n, at)
			}
			for next := order.Uint32(page[at+4:]); next != 0; {
				if int64(next) >= int64(pages) || visited[next] {
					return fmt.Errorf("berkeley db: page %d: overflow chain reaches page %d twice or beyond the file", n, next)
				}
				visited[next] = true
				o := b[int(next)*ps : (int(next)+1)*ps]
				if o[25] != 7 {
					return fmt.Errorf("berkeley db: page %d: overflow chain reaches page %d of type %d", n, next, o[25])
				}
				next = order.Uint32(o[16:])
				if next == 0 && 26+int(order.Uint16(o[22:])) > ps {
					return fmt.Errorf("berkeley db: overflow page: %d bytes used", order.Uint16(o[22:]))
				}
			}
		}
	}
	return nil
}

// checkRPMSQLite runs go-rpmdb's query on a read-only connection of our
// own: a file SQLite cannot open, without a Packages table, or with a
// NULL blob (which go-rpmdb cannot scan) is refused before go-rpmdb runs
// it (its reader would block for ever on the error).
func checkRPMSQLite(path string) error {
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&immutable=1")
	if err != nil {
		return fmt.Errorf("sqlite database: %w", err)
	}
	defer db.Close()
	var nulls int
	if err := db.QueryRow("SELECT count(*) FROM Packages WHERE blob IS NULL").Scan(&nulls); err != nil {
		return fmt.Errorf("sqlite database: %w", err)
	}
	if nulls > 0 {
		return fmt.Errorf("sqlite database: %d packages without a header", nulls)
	}
	return nil
}
