package server

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/scanners/report"
)

// scanBody bounds a posted CI report.
const scanBody = 16 << 20

// maxReportDepth bounds how deeply a report's JSON may nest. The report
// schema nests less than 10 deep; unknown fields are kept, so without a bound
// an upload of arrays nested thousands deep would be kept too (and cost
// memory and time at every read).
const maxReportDepth = 64

// scanParses bounds how many reports are parsed at once in this process, so
// that concurrent 16 MiB uploads cannot multiply the console's memory.
var scanParses = make(chan struct{}, 2)

// scanReads bounds how many stored reports (up to scanBody each, held twice
// while the database driver copies them) are in memory at once for GET
// /api/v1/scans/{id}; further readers wait their turn.
var scanReads = make(chan struct{}, 2)

// parseReport reads a CI report: schema version 1, with a result, nested at
// most maxReportDepth deep. Unknown fields are kept (newer CLIs add fields
// without changing the version), within that depth and the body limit.
func parseReport(body []byte) (report.Report, error) {
	var rep report.Report
	if d, at := jsonDepth(body, maxReportDepth); d > maxReportDepth {
		return rep, fmt.Errorf("request body nests deeper than %d levels (at byte %d): a CI report is not that deep", maxReportDepth, at)
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return rep, describeJSONError(err)
	}
	switch {
	case rep.SchemaVersion != report.SchemaVersion:
		return rep, fmt.Errorf("request body: schemaVersion %d: this console reads CI reports of schema version %d", rep.SchemaVersion, report.SchemaVersion)
	case rep.Result != report.ResultPassed && rep.Result != report.ResultBlocked:
		return rep, fmt.Errorf("request body: result %q: want %q or %q", rep.Result, report.ResultPassed, report.ResultBlocked)
	}
	if rep.Task != nil {
		// A task definition without a family is reported as such (empty);
		// a family that is not a valid ECS name is refused.
		if err := checkFamily("request body: task.family", rep.Task.Family, false); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func (s *Server) publishScan(w http.ResponseWriter, r *http.Request) {
	release, ok := reserveUpload(w, r, scanBody)
	if !ok {
		return
	}
	defer release()
	body, err := readBody(r)
	if err != nil {
		badBody(w, err)
		return
	}
	// The body is read before waiting: a request waiting with its body
	// unread would hold the HTTP/2 connection's flow control from the
	// requests it waits for (on one connection, a deadlock).
	select {
	case scanParses <- struct{}{}:
		defer func() { <-scanParses }()
	case <-r.Context().Done():
		return
	}
	rep, err := parseReport(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		writeError(w, http.StatusBadRequest, describeJSONError(err).Error())
		return
	}
	summary, _ := json.Marshal(rep.Summary)
	sc := store.Scan{
		ID:         newScanID(),
		ReceivedAt: time.Now().UTC(),
		Publisher:  info(r.Context()).subject,
		Result:     rep.Result,
		Summary:    summary,
		Report:     compact.Bytes(),
	}
	if rep.Image != nil {
		sc.Image, sc.Digest = rep.Image.Name, rep.Image.Digest
	}
	if rep.Task != nil {
		sc.TaskFamily = rep.Task.Family
	}
	if err := s.store.SaveScan(r.Context(), sc); err != nil {
		s.internalError(w, r, "save scan", err)
		return
	}
	s.log.Info("scan published", "id", info(r.Context()).id, "scan", sc.ID, "image", sc.Image, "result", sc.Result)
	w.Header().Set("Location", api.PathScans+"/"+sc.ID)
	writeJSON(w, http.StatusCreated, scanSummary(sc))
}

func newScanID() string {
	// Sortable by time, unique by the random part.
	return time.Now().UTC().Format("20060102T150405Z") + "-" + rand.Text()[:10]
}

func scanSummary(sc store.Scan) api.ScanSummary {
	return api.ScanSummary{ID: sc.ID, ReceivedAt: sc.ReceivedAt, Publisher: sc.Publisher, Image: sc.Image,
		Digest: sc.Digest, TaskFamily: sc.TaskFamily, Result: sc.Result, Summary: sc.Summary}
}

func (s *Server) listScans(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := store.ScanQuery{Image: v.Get("image"), Result: v.Get("result"), Cursor: v.Get("cursor")}
	page, err := s.store.Scans(r.Context(), q)
	if errors.Is(err, store.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("cursor=%q is not a cursor this console gave out", q.Cursor))
		return
	}
	if err != nil {
		s.internalError(w, r, "list scans", err)
		return
	}
	out := api.ScanPage{Scans: make([]api.ScanSummary, 0, len(page.Scans)), Next: page.Next}
	for _, sc := range page.Scans {
		out.Scans = append(out.Scans, scanSummary(sc))
	}
	writeJSON(w, http.StatusOK, out)
}

// getScan answers api.ScanDetail. The stored report (compact JSON, checked
// when it was published) is written as it is, after the summary fields: the
// answer is as large as the upload, never re-encoded or indented.
func (s *Server) getScan(w http.ResponseWriter, r *http.Request) {
	select {
	case scanReads <- struct{}{}:
		defer func() { <-scanReads }()
	case <-r.Context().Done():
		return
	}
	sc, err := s.store.Scan(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no scan %q", r.PathValue("id")))
		return
	}
	if err != nil {
		s.internalError(w, r, "read scan", err)
		return
	}
	head, err := json.Marshal(scanSummary(sc))
	if err != nil || len(head) < 2 {
		s.internalError(w, r, "encode scan", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(head)+len(`,"report":`)+len(orNullReport(sc.Report))))
	w.WriteHeader(http.StatusOK)
	w.Write(head[:len(head)-1])
	io.WriteString(w, `,"report":`)
	w.Write(orNullReport(sc.Report))
	io.WriteString(w, "}")
}

func orNullReport(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

// deleteScan removes a scan (admins): 204, or 404 when there is none.
func (s *Server) deleteScan(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.store.DeleteScan(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no scan %q", id))
		return
	}
	if err != nil {
		s.internalError(w, r, "delete scan", err)
		return
	}
	s.log.Info("scan deleted", "id", info(r.Context()).id, "scan", id, "by", info(r.Context()).subject)
	w.WriteHeader(http.StatusNoContent)
}

// jsonDepth returns how deeply the JSON text b nests arrays and objects, and
// the offset where it first went deeper than limit (the scan stops there).
// Strings are skipped, escapes included; b need not be valid JSON.
func jsonDepth(b []byte, limit int) (depth, at int) {
	cur, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			cur++
			if cur > depth {
				depth = cur
				if depth > limit {
					return depth, i
				}
			}
		case ']', '}':
			cur--
		}
	}
	return depth, -1
}
