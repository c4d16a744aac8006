package analyzer

import (
	"bytes"
	"fmt"
	"slices"
)

// The YAML parsers (goccy/go-yaml here, yaml.v3 too) take time that grows
// with the square of the number of entries in one block mapping: a
// pnpm-lock.yaml with 16,000 packages took 6.5 s, and a hostile 32 MiB one
// of tiny entries would take days. yamlSections bounds that: the entries
// of a large top-level section (pnpm's packages, snapshots, importers) are
// parsed in chunks of yamlChunkEntries, and a document whose other
// collections (nested mappings and sequences, the top level) would cost more
// than one collection of yamlMaxSiblings entries — the sum of their sizes
// squared — is refused.
const (
	yamlChunkEntries = 1000
	yamlMaxSiblings  = 20000
)

// yamlDoc is one piece of a YAML document to parse on its own: the whole
// document without its chunked sections (section ""), or a chunk of the
// entries of one top-level section, with its key line first.
type yamlDoc struct {
	section string
	content []byte
}

// yamlSections splits b into the documents to parse: b itself when no
// top-level section has more than yamlChunkEntries entries, else the rest of
// b and the large sections in chunks. It refuses a nested collection of more
// than yamlMaxSiblings entries, and a chunked section whose lines are not
// plain block YAML (a document marker, an entry less indented than the
// first).
// yamlLine is one line of a YAML document and its indentation (-1: blank
// or a comment).
type yamlLine struct {
	text   []byte
	indent int
}

// yamlLines splits b into lines and refuses it when its collections other
// than those at chunkDepth (1: the top level's entries, 2: those of the
// top-level sections), which are parsed in chunks, would cost more than one
// collection of yamlMaxSiblings entries.
func yamlLines(b []byte, chunkDepth int) ([]yamlLine, error) {
	var lines []yamlLine
	for rest := b; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		var l []byte
		if i < 0 {
			l, rest = rest, nil
		} else {
			l, rest = rest[:i+1], rest[i+1:]
		}
		trimmed := bytes.TrimLeft(l, " ")
		indent := len(l) - len(trimmed)
		if t := bytes.TrimSpace(trimmed); len(t) == 0 || t[0] == '#' {
			indent = -1
		}
		lines = append(lines, yamlLine{l, indent})
	}
	// Count the entries of each collection: lines at the same indentation
	// under the same parent. Sequence items ("- ") count as entries too.
	type level struct{ indent, count, line int }
	var stack []level
	var cost int // the sum of the unchunked collections' sizes squared
	for n, l := range lines {
		if l.indent < 0 {
			continue
		}
		for len(stack) > 0 && stack[len(stack)-1].indent > l.indent {
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].indent == l.indent {
			stack[len(stack)-1].count++
		} else {
			stack = append(stack, level{indent: l.indent, count: 1, line: n + 1})
		}
		// (c+1)² - c² more for a collection that is not chunked.
		if top := stack[len(stack)-1]; len(stack) != chunkDepth {
			if cost += 2*top.count - 1; cost > yamlMaxSiblings*yamlMaxSiblings {
				return nil, fmt.Errorf("the collection at line %d (%d entries so far) brings the document's nested collections past the equivalent of one of %d entries: refused (parsing time grows with the square of a collection's size)",
					top.line, top.count, yamlMaxSiblings)
			}
		}
	}
	return lines, nil
}

// yamlTopChunks splits b, a mapping of entries at its top level (yarn
// berry's lock file), into documents of at most yamlChunkEntries entries
// each (b itself when it has no more), refusing it as yamlLines does.
func yamlTopChunks(b []byte) ([][]byte, error) {
	lines, err := yamlLines(b, 1)
	if err != nil {
		return nil, err
	}
	var starts []int
	for n, l := range lines {
		if l.indent == 0 {
			if bytes.HasPrefix(l.text, []byte("---")) || bytes.HasPrefix(l.text, []byte("...")) {
				return nil, fmt.Errorf("line %d: a lock file must be a single YAML document", n+1)
			}
			starts = append(starts, n)
		}
	}
	if len(starts) <= yamlChunkEntries {
		return [][]byte{b}, nil
	}
	var docs [][]byte
	for i := 0; i < len(starts); i += yamlChunkEntries {
		from, to := starts[i], len(lines)
		if i == 0 {
			from = 0
		}
		if i+yamlChunkEntries < len(starts) {
			to = starts[i+yamlChunkEntries]
		}
		var d bytes.Buffer
		for _, l := range lines[from:to] {
			d.Write(l.text)
		}
		if !bytes.HasSuffix(d.Bytes(), []byte("\n")) {
			d.WriteByte('\n')
		}
		docs = append(docs, d.Bytes())
	}
	return docs, nil
}

func yamlSections(b []byte) ([]yamlDoc, error) {
	lines, err := yamlLines(b, 2)
	if err != nil {
		return nil, err
	}
	// Group the lines into top-level sections and their entries.
	type section struct {
		key     []byte  // the top-level key line
		lead    []int   // blank and comment lines before the first entry
		entries [][]int // line numbers of each entry
		body    []int   // lines less indented than the first entry
	}
	var head []int // lines before any top-level key
	var sections []*section
	var cur *section
	entryIndent := -1
	for n, l := range lines {
		switch {
		case l.indent == 0:
			if bytes.HasPrefix(l.text, []byte("---")) || bytes.HasPrefix(l.text, []byte("...")) {
				cur = nil
				head = append(head, n)
				continue
			}
			cur = &section{key: l.text}
			sections = append(sections, cur)
			entryIndent = -1
		case cur == nil:
			head = append(head, n)
		case l.indent < 0:
			if len(cur.entries) > 0 {
				cur.entries[len(cur.entries)-1] = append(cur.entries[len(cur.entries)-1], n)
			} else {
				cur.lead = append(cur.lead, n)
			}
		case entryIndent < 0 || l.indent == entryIndent:
			entryIndent = l.indent
			cur.entries = append(cur.entries, []int{n})
		case l.indent > entryIndent:
			cur.entries[len(cur.entries)-1] = append(cur.entries[len(cur.entries)-1], n)
		default:
			cur.body = append(cur.body, n) // less indented than the first entry: left for the parser to judge
		}
	}
	large := false
	for _, s := range sections {
		if len(s.entries) > yamlChunkEntries {
			large = true
		}
	}
	if !large {
		return []yamlDoc{{content: b}}, nil
	}
	var docs []yamlDoc
	var rest bytes.Buffer
	for _, n := range head {
		if l := lines[n].text; bytes.HasPrefix(l, []byte("---")) || bytes.HasPrefix(l, []byte("...")) {
			return nil, fmt.Errorf("line %d: a document with more than %d entries in one section must be a single YAML document", n+1, yamlChunkEntries)
		}
		rest.Write(lines[n].text)
	}
	for _, s := range sections {
		if len(s.entries) <= yamlChunkEntries {
			// Written back in the order they came.
			var ns []int
			ns = append(ns, s.lead...)
			for _, e := range s.entries {
				ns = append(ns, e...)
			}
			ns = append(ns, s.body...)
			slices.Sort(ns)
			rest.Write(s.key)
			for _, n := range ns {
				rest.Write(lines[n].text)
			}
			continue
		}
		if len(s.body) > 0 {
			return nil, fmt.Errorf("line %d: section %s of more than %d entries is indented irregularly", s.body[0]+1, bytes.TrimSpace(s.key), yamlChunkEntries)
		}
		name := string(bytes.TrimSuffix(bytes.TrimSpace(s.key), []byte(":")))
		for i := 0; i < len(s.entries); i += yamlChunkEntries {
			var chunk bytes.Buffer
			chunk.Write(s.key)
			if !bytes.HasSuffix(s.key, []byte("\n")) {
				chunk.WriteByte('\n')
			}
			for _, e := range s.entries[i:min(i+yamlChunkEntries, len(s.entries))] {
				for _, n := range e {
					chunk.Write(lines[n].text)
				}
			}
			docs = append(docs, yamlDoc{section: name, content: chunk.Bytes()})
		}
	}
	return append([]yamlDoc{{content: rest.Bytes()}}, docs...), nil
}
