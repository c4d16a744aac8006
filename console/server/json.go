package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/taskguard/taskguard/console/api"
	"golang.org/x/sync/semaphore"
)

// tooLargeError is a body past the route's limit: handlers answer 413.
type tooLargeError struct{ limit int64 }

func (e *tooLargeError) Error() string { return tooLarge(e.limit) }

// decodeJSON reads exactly one JSON value from body into v. Unknown fields
// and trailing data are errors; every error message starts with "request
// body" and names the problem.
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return describeJSONError(err)
		}
		return errors.New("request body has more data after the JSON value: send one JSON object")
	}
	return nil
}

func describeJSONError(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		tooBig *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooBig):
		return &tooLargeError{limit: tooBig.Limit}
	case errors.Is(err, io.EOF):
		return errors.New("request body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("request body is not valid JSON: it ends before the value is complete")
	case errors.As(err, &syntax):
		return fmt.Errorf("request body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Errorf("request body must be a JSON object, not a JSON %s", typ.Value)
		}
		return fmt.Errorf("request body: field %q must be a JSON %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	}
	return fmt.Errorf("request body: %s", trimJSONPrefix(err.Error()))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	}
	return "number"
}

func trimJSONPrefix(s string) string {
	const p = "json: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// writeError answers status with {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, api.Error{Error: msg})
}

// badBody answers a body decoding error: 413 when too large, else 400.
func badBody(w http.ResponseWriter, err error) {
	var tl *tooLargeError
	if errors.As(err, &tl) {
		writeError(w, http.StatusRequestEntityTooLarge, tl.Error())
		return
	}
	writeError(w, http.StatusBadRequest, err.Error())
}

// readBody reads the whole (already size-limited) request body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &tooLargeError{limit: tooBig.Limit}
	}
	return b, err
}

// uploadBudget bounds the raw bodies of large uploads (CI reports and
// container inventories, up to 16 MiB each) held at once in this process. The
// handlers read a body before waiting for their parse slot (waiting first
// would hold HTTP/2 flow control), so without it N concurrent uploads would
// hold N bodies.
var uploadBudget = semaphore.NewWeighted(uploadBudgetBytes)

// uploadBudgetBytes is uploadBudget's size: four full-size uploads.
const uploadBudgetBytes = 64 << 20

// reserveUpload takes room in uploadBudget for r's body (its Content-Length,
// or limit when unknown). When there is none it answers 503 with Retry-After
// at once (a client retries; waiting here would hold the connection's flow
// control) and returns ok false.
func reserveUpload(w http.ResponseWriter, r *http.Request, limit int64) (release func(), ok bool) {
	n := limit
	if r.ContentLength >= 0 && r.ContentLength < limit {
		n = r.ContentLength
	}
	if !uploadBudget.TryAcquire(n) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "the console is taking in other large uploads: retry in a few seconds")
		return nil, false
	}
	return func() { uploadBudget.Release(n) }, true
}
