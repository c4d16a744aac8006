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
//   - NDB: a blob's length is allocated as the header says (up to 4 GiB);
//   - package headers: ListPackages returns at the first header its
//     headerImport or getNEVRA refuses (or panics on: a region trailer of
//     no entry), leaving the reader blocked as above; it allocates a
//     header's index as il says (up to 32 GiB), and scans the rest of the
//     data once per string a string entry's count claims (up to 2³²).
//
// checkRPMDB walks the database as go-rpmdb will, within the bytes there
// are, before go-rpmdb sees it: a database it would fail on, loop on or
// panic on is refused here. That includes every package header, read as
// go-rpmdb's reader will hand it over (an NDB blob, a Berkeley DB value's
// overflow pages joined, a SQLite row of go-rpmdb's query) and checked by
// checkRPMHeader, so ListPackages reads to the end and its reader
// goroutine ends. Its work is linear in len(b) (every page is read at
// most once per walk; an overflow chain visits a page once; a header's
// entries' data are disjoint), and it allocates no more than the largest
// Berkeley DB value (SQLite rows are the driver's).
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
		end := off + 16 + int64(binary.LittleEndian.Uint32(h[12:]))
		if end > int64(len(b)) {
			return fmt.Errorf("ndb database: slot %d: blob beyond the file", i)
		}
		if err := checkRPMHeader(b[off+16 : end]); err != nil {
			return fmt.Errorf("ndb database: slot %d (package %d): header: %w", i, pkg, err)
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
	var value []byte // a value's overflow pages' bytes, as go-rpmdb joins them
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
			value = value[:0]
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
				if next != 0 {
					value = append(value, o[26:]...)
					continue
				}
				used := int(order.Uint16(o[22:]))
				if 26+used > ps {
					return fmt.Errorf("berkeley db: overflow page: %d bytes used", used)
				}
				value = append(value, o[26:26+used]...)
			}
			if err := checkRPMHeader(value); err != nil {
				return fmt.Errorf("berkeley db: page %d, value %d: header: %w", n, k/2+1, err)
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
	// go-rpmdb's query, its rows in the same order.
	rows, err := db.Query("SELECT blob FROM Packages")
	if err != nil {
		return fmt.Errorf("sqlite database: %w", err)
	}
	defer rows.Close()
	for row := 1; rows.Next(); row++ {
		var blob sql.RawBytes // what go-rpmdb scans into a string
		if err := rows.Scan(&blob); err != nil {
			return fmt.Errorf("sqlite database: package row %d: %w", row, err)
		}
		if err := checkRPMHeader(blob); err != nil {
			return fmt.Errorf("sqlite database: package row %d: header: %w", row, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite database: %w", err)
	}
	return nil
}

// rpm header tags and types as go-rpmdb v0.1.1 reads them (pkg/rpmtags.go).
const (
	rpmTagHeaderImage      = 61
	rpmTagHeaderSignatures = 62
	rpmTagHeaderImmutable  = 63
	rpmTagI18NTable        = 100

	rpmTypeInt16       = 3
	rpmTypeInt32       = 4
	rpmTypeString      = 6
	rpmTypeBin         = 7
	rpmTypeStringArray = 8
	rpmTypeI18NString  = 9

	rpmHeaderMaxBytes = 256 << 20 // go-rpmdb's headerMaxbytes
	rpmRegionCount    = 16        // a region tag's count, the size of an index entry
)

// rpmTypeSize and rpmTypeAlign are go-rpmdb's typeSizes and typeAlign for
// the types it accepts (0 to 9); -1 is a string type.
var (
	rpmTypeSize  = [10]int64{0, 1, 1, 2, 4, 8, -1, 1, -1, -1}
	rpmTypeAlign = [10]int64{1, 1, 1, 2, 4, 8, 1, 1, 1, 1}
)

// rpmNEVRATags are the tags go-rpmdb's getNEVRA reads, each with the one
// type it insists on (0: any; the summary takes two, see checkNEVRA).
var rpmNEVRATags = [...]struct {
	tag int32
	typ uint32
}{
	{1116, rpmTypeInt32}, {1118, rpmTypeStringArray}, {1117, rpmTypeStringArray}, // dir indexes, dir names, base names
	{5096, rpmTypeString}, {1000, rpmTypeString}, {1003, rpmTypeInt32}, // modularity label, name, epoch
	{1001, rpmTypeString}, {1002, rpmTypeString}, {1022, rpmTypeString}, // version, release, arch
	{1044, rpmTypeString}, {1047, rpmTypeStringArray}, {1049, rpmTypeStringArray}, // source rpm, provides, requires
	{1014, rpmTypeString}, {1011, rpmTypeString}, {1009, rpmTypeInt32}, // license, vendor, size
	{5011, rpmTypeInt32}, {1028, rpmTypeInt32}, {1035, rpmTypeStringArray}, // digest algorithm, file sizes, file digests
	{1030, rpmTypeInt16}, {1037, rpmTypeInt32}, {1039, rpmTypeStringArray}, // file modes, file flags, user names
	{1040, rpmTypeStringArray}, {1004, 0}, {1008, rpmTypeInt32}, // group names, summary, install time
	{259, rpmTypeBin}, // PGP signature
}

// rpmEntry is one index entry of a header, in host order.
type rpmEntry struct {
	tag   int32
	typ   uint32
	off   int64
	count uint32
}

// rpmHeader is a package header blob under check.
type rpmHeader struct {
	b                  []byte
	il, dl             int64 // index entries, data bytes
	dataStart, dataEnd int64 // the data's bounds in b
	// dedup: go-rpmdb keeps the last entry of each tag (a header with
	// dribble entries); last holds, per rpmNEVRATags, that entry's index
	// (+1), data start and length.
	dedup bool
	last  [len(rpmNEVRATags)]struct{ i, start, n int64 }
}

func (h *rpmHeader) entry(i int64) rpmEntry {
	return rpmEntryAt(h.b, 8+16*i)
}

func rpmEntryAt(b []byte, at int64) rpmEntry {
	e := b[at : at+16]
	return rpmEntry{
		tag:   int32(binary.BigEndian.Uint32(e)),
		typ:   binary.BigEndian.Uint32(e[4:]),
		off:   int64(int32(binary.BigEndian.Uint32(e[8:]))),
		count: binary.BigEndian.Uint32(e[12:]),
	}
}

// checkRPMHeader checks a package header blob as go-rpmdb's headerImport
// (hdrblobInit, hdrblobVerifyRegion, hdrblobVerifyInfo, hdrblobImport,
// regionSwab) and getNEVRA read it: a blob it returns an error for (or
// panics on: a region of no entry) is refused here, so that ListPackages
// reads every entry and its reader goroutine ends. Two checks are rpm's
// own, which go-rpmdb's port lost, and bound go-rpmdb's work: entries'
// data must not overlap (its check compares with a shadowed variable),
// and a string entry must hold all the strings its count says (go-rpmdb
// scans the rest of the data once per missing string, up to 2³² times).
// The work is linear in len(b) (the entries' data are disjoint, each
// scanned once) and nothing is allocated.
func checkRPMHeader(b []byte) error {
	if len(b) < 8 {
		return fmt.Errorf("%d bytes, too short for its index and data lengths", len(b))
	}
	h := rpmHeader{
		b:  b,
		il: int64(int32(binary.BigEndian.Uint32(b))),
		dl: int64(int32(binary.BigEndian.Uint32(b[4:]))),
	}
	// go-rpmdb allocates il entries before it reads them, and reads the
	// index as far as the blob goes; entries past it are zero (tag 0),
	// which it refuses.
	if h.il < 1 || h.il > int64(len(b)-8)/16 {
		return fmt.Errorf("%d index entries (il) in %d bytes", h.il, len(b))
	}
	h.dataStart = 8 + 16*h.il
	if h.dl < 0 || h.dl > int64(len(b))-h.dataStart {
		return fmt.Errorf("%d data bytes (dl) in %d bytes after the index", h.dl, int64(len(b))-h.dataStart)
	}
	h.dataEnd = h.dataStart + h.dl
	if h.dataEnd >= rpmHeaderMaxBytes {
		return fmt.Errorf("%d bytes, more than rpm's limit", h.dataEnd)
	}

	// hdrblobVerifyRegion.
	e0 := h.entry(0)
	var regionTag int32
	ril := int64(0)
	region := false
	switch e0.tag {
	case rpmTagHeaderImage, rpmTagHeaderSignatures, rpmTagHeaderImmutable:
		regionTag = e0.tag
	}
	if e0.tag == regionTag {
		if e0.typ != rpmTypeBin || e0.count != rpmRegionCount {
			return fmt.Errorf("region tag %d: type %d, count %d (want %d, %d)", e0.tag, e0.typ, e0.count, rpmTypeBin, rpmRegionCount)
		}
		if e0.off+rpmRegionCount < 0 || e0.off+rpmRegionCount > h.dl {
			return fmt.Errorf("region tag %d: trailer at %d, outside the %d data bytes", e0.tag, e0.off, h.dl)
		}
		// off >= -16 and dataStart >= 24: the trailer is within b.
		trailer := rpmEntryAt(b, h.dataStart+e0.off)
		size := int64(-int32(trailer.off)) // go-rpmdb negates an int32
		ril = size / 16
		if size%16 != 0 || ril < 0 || ril > h.il {
			return fmt.Errorf("region tag %d: trailer claims %d bytes of index (%d entries)", e0.tag, size, h.il)
		}
		region = regionTag != 0
	}

	// hdrblobVerifyInfo, with rpm's overlap check and string count.
	first := int64(0)
	if region {
		first = 1
	}
	end := int64(0)
	for i := first; i < h.il; i++ {
		e := h.entry(i)
		switch {
		case e.off < end:
			return fmt.Errorf("entry %d (tag %d): data at %d overlaps the previous entry's (to %d)", i, e.tag, e.off, end)
		case e.tag < rpmTagI18NTable:
			return fmt.Errorf("entry %d: tag %d", i, e.tag)
		case e.typ >= uint32(len(rpmTypeSize)):
			return fmt.Errorf("entry %d (tag %d): type %d", i, e.tag, e.typ)
		case e.off&(rpmTypeAlign[e.typ]-1) != 0:
			return fmt.Errorf("entry %d (tag %d): data at %d not aligned for type %d", i, e.tag, e.off, e.typ)
		case e.off > h.dl:
			return fmt.Errorf("entry %d (tag %d): data at %d, outside the %d data bytes", i, e.tag, e.off, h.dl)
		}
		n := h.dataLength(e, h.dataStart+e.off)
		if n <= 0 || e.off+n > h.dl {
			return fmt.Errorf("entry %d (tag %d): %d values of type %d at %d do not fit in the %d data bytes", i, e.tag, e.count, e.typ, e.off, h.dl)
		}
		end = e.off + n
	}

	// hdrblobImport: which entries go-rpmdb reads, and their lengths.
	var rdlen int64
	var err error
	if e0.tag >= rpmTagI18NTable {
		// A v3 header without a region.
		if rdlen, err = h.swab(0, h.il, 0); err != nil {
			return err
		}
	} else {
		r := ril
		if e0.off == 0 {
			r = h.il
		}
		if r < 1 {
			// go-rpmdb slices its entries [1:0] and panics.
			return fmt.Errorf("region tag %d: trailer claims no entry", e0.tag)
		}
		h.dedup = ril < h.il-1
		if rdlen, err = h.swab(1, r, 0); err != nil {
			return err
		}
		if h.dedup {
			if rdlen, err = h.swab(r, h.il, rdlen); err != nil {
				return err
			}
			for k, l := range h.last {
				if l.i > 0 {
					if err := h.checkNEVRA(l.i-1, h.entry(l.i-1), b[l.start:l.start+l.n], rpmNEVRATags[k].typ); err != nil {
						return err
					}
				}
			}
		}
		rdlen += rpmRegionCount
	}
	if rdlen != h.dl {
		return fmt.Errorf("entries hold %d data bytes, dl says %d", rdlen, h.dl)
	}
	return nil
}

// swab is go-rpmdb's regionSwab over entries [from, to), all checked by
// checkRPMHeader already: it sums their lengths (aligned) to rdlen and
// checks the entries getNEVRA reads.
func (h *rpmHeader) swab(from, to, rdlen int64) (int64, error) {
	for i := from; i < to; i++ {
		e := h.entry(i)
		start := h.dataStart + e.off
		if start >= h.dataEnd {
			return 0, fmt.Errorf("entry %d (tag %d): data at %d, at the end of the %d data bytes", i, e.tag, e.off, h.dl)
		}
		var n int64
		if i < to-1 && rpmTypeSize[e.typ] == -1 {
			n = h.entry(i+1).off - e.off
		} else {
			n = h.dataLength(e, start)
		}
		if n < 0 || start+n > int64(len(h.b)) {
			return 0, fmt.Errorf("entry %d (tag %d): %d data bytes at %d", i, e.tag, n, e.off)
		}
		if k := rpmNEVRATag(e.tag); k >= 0 {
			if h.dedup {
				h.last[k].i, h.last[k].start, h.last[k].n = i+1, start, n
			} else if err := h.checkNEVRA(i, e, h.b[start:start+n], rpmNEVRATags[k].typ); err != nil {
				return 0, err
			}
		}
		if size := rpmTypeSize[e.typ]; size > 1 && rdlen%size != 0 {
			rdlen += size - rdlen%size
		}
		rdlen += n
		if rdlen > h.dl {
			return 0, fmt.Errorf("entries hold more than the %d data bytes", h.dl)
		}
	}
	return rdlen, nil
}

// dataLength is go-rpmdb's dataLength for an entry checked to have a known
// type, whose data starts at start: -1 if it does not fit before dataEnd.
// A string type must hold all its count strings (rpm's strtaglen).
func (h *rpmHeader) dataLength(e rpmEntry, start int64) int64 {
	switch e.typ {
	case rpmTypeString, rpmTypeStringArray, rpmTypeI18NString:
		if e.typ == rpmTypeString && e.count != 1 || start >= h.dataEnd {
			return -1
		}
		at := start
		for c := e.count; c > 0; c-- {
			i := bytes.IndexByte(h.b[at:h.dataEnd], 0)
			if i < 0 {
				return -1
			}
			at += int64(i) + 1
		}
		return at - start
	}
	n := rpmTypeSize[e.typ] * int64(e.count)
	if start+n > h.dataEnd {
		return -1
	}
	return n
}

func rpmNEVRATag(tag int32) int {
	for k, t := range rpmNEVRATags {
		if t.tag == tag {
			return k
		}
	}
	return -1
}

// checkNEVRA makes getNEVRA's checks of entry i, one of the tags it
// reads, whose data is d: its type, and data enough for what it decodes.
func (h *rpmHeader) checkNEVRA(i int64, e rpmEntry, d []byte, want uint32) error {
	switch {
	case e.tag == 1004: // the summary
		if e.typ != rpmTypeI18NString && e.typ != rpmTypeString {
			return fmt.Errorf("entry %d (tag %d): type %d, not a string", i, e.tag, e.typ)
		}
		return nil
	case e.typ != want:
		return fmt.Errorf("entry %d (tag %d): type %d, want %d", i, e.tag, e.typ, want)
	}
	need := 0
	switch e.tag {
	case 1003, 1008, 1009, 5011: // one int32: epoch, install time, size, digest algorithm
		need = 4
	case 259: // a PGP signature: tag, type, version, then a v3 or v4 packet
		need = 3
		if len(d) >= 3 && d[1] == 1 {
			need += 17
			if d[2] == 0x1c {
				need = 3 + 24
			}
		}
	}
	if len(d) < need {
		return fmt.Errorf("entry %d (tag %d): %d bytes, want %d", i, e.tag, len(d), need)
	}
	return nil
}
