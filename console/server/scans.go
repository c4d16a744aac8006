package server

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/scanners/report"
)

// scanBody bounds a posted CI report.
const scanBody = 16 << 20

// parseReport reads a CI report: schema version 1, with a result. Unknown
// fields are kept (newer CLIs add fields without changing the version).
func parseReport(body []byte) (report.Report, error) {
	var rep report.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return rep, describeJSONError(err)
	}
	switch {
	case rep.SchemaVersion != report.SchemaVersion:
		return rep, fmt.Errorf("request body: schemaVersion %d: this console reads CI reports of schema version %d", rep.SchemaVersion, report.SchemaVersion)
	case rep.Result != report.ResultPassed && rep.Result != report.ResultBlocked:
		return rep, fmt.Errorf("request body: result %q: want %q or %q", rep.Result, report.ResultPassed, report.ResultBlocked)
	}
	return rep, nil
}

func (s *Server) publishScan(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		badBody(w, err)
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

func (s *Server) getScan(w http.ResponseWriter, r *http.Request) {
	sc, err := s.store.Scan(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no scan %q", r.PathValue("id")))
		return
	}
	if err != nil {
		s.internalError(w, r, "read scan", err)
		return
	}
	writeJSON(w, http.StatusOK, api.ScanDetail{ScanSummary: scanSummary(sc), Report: sc.Report})
}
