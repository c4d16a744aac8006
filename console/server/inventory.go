package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/taskimages"
	"github.com/taskguard/taskguard/internal/severity"
)

// inventoryBody bounds a posted container inventory.
const inventoryBody = 16 << 20

// inventoryParses bounds how many inventories are parsed, stored and
// evaluated at once in this process, so that concurrent 16 MiB uploads
// cannot multiply the console's memory (beyond their raw bodies).
var inventoryParses = make(chan struct{}, 1)

// postInventory stores a defender's inventory of its container. An agent
// token belongs to one task family: the inventory is filed under it.
func (s *Server) postInventory(w http.ResponseWriter, r *http.Request) {
	release, ok := reserveUpload(w, r, inventoryBody)
	if !ok {
		return
	}
	defer release()
	body, err := readBody(r)
	if err != nil {
		badBody(w, err)
		return
	}
	// The body is read first: a request waiting here with its body unread
	// would hold HTTP/2 flow control from the requests it waits for.
	select {
	case inventoryParses <- struct{}{}:
		defer func() { <-inventoryParses }()
	case <-r.Context().Done():
		return
	}
	inv, err := parseInventory(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if p, ok := auth.PrincipalFrom(r.Context()); ok && p.TaskFamily != "" {
		inv.TaskFamily = p.TaskFamily
	} else if err := checkFamily("request body: taskFamily", inv.TaskFamily, true); err != nil {
		// An admin names the family; an inventory is listed under it.
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	si := store.StoredInventory{ReceivedAt: time.Now().UTC(), Inventory: inv}
	if err := s.store.SaveInventory(r.Context(), si); err != nil {
		s.internalError(w, r, "save inventory", err)
		return
	}
	// The inventory is stored; alerts that cannot be written now are written
	// at the next evaluation (their IDs are stable).
	if _, err := s.alerts.Evaluate(r.Context(), []store.StoredInventory{si}); err != nil {
		s.log.Warn("image alerts not evaluated", "id", info(r.Context()).id, "container", inv.Container, "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
}

// parseInventory reads and validates a defender's inventory body.
func parseInventory(body []byte) (api.Inventory, error) {
	var inv api.Inventory
	if err := json.Unmarshal(body, &inv); err != nil {
		return inv, describeJSONError(err)
	}
	if err := inv.Validate(); err != nil {
		return inv, fmt.Errorf("request body: %w", err)
	}
	return inv, nil
}

// taskImageFilter reads the filters of PathTaskImages.
func taskImageFilter(r *http.Request) (taskimages.Filter, error) {
	q := r.URL.Query()
	f := taskimages.Filter{Task: q.Get("task"), Image: q.Get("image"), Severity: q.Get("severity"), CVE: q.Get("cve")}
	if v := q.Get("fixed"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, errors.New("fixed=" + strconv.Quote(v) + ": want true or false")
		}
		f.Fixed = b
	}
	return f, f.Validate()
}

// listTaskImages lists the images running in task containers with their
// vulnerabilities, matched against the current DB.
func (s *Server) listTaskImages(w http.ResponseWriter, r *http.Request) {
	f, err := taskImageFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The inventories are read and matched one at a time (taskimages.List).
	list, err := s.images.List(r.Context(), s.store, f)
	if err != nil {
		s.internalError(w, r, "list task images", err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// getTaskImage is one task container's image with its vulnerabilities and
// compliance findings.
func (s *Server) getTaskImage(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "id "+strconv.Quote(r.PathValue("id"))+": want a number from the list")
		return
	}
	f, err := taskImageFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ti, found, err := s.images.One(r.Context(), s.store, id, f)
	if err != nil {
		s.internalError(w, r, "match inventory", err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, "no task image with id "+strconv.FormatInt(id, 10))
		return
	}
	writeJSON(w, http.StatusOK, ti)
}

// taskImagesPage is the "Images in tasks" web page.
func (s *Server) taskImagesPage(w http.ResponseWriter, r *http.Request) {
	f, err := taskImageFilter(r)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		s.render(w, r, "error.html", "task-images", "Bad filter", err.Error())
		return
	}
	// The inventories are read and matched one at a time (taskimages.List).
	list, err := s.images.List(r.Context(), s.store, f)
	if err != nil {
		s.internalError(w, r, "list task images", err)
		return
	}
	s.render(w, r, "taskimages.html", "task-images", "Images in tasks", map[string]any{
		"List": list, "Filter": f, "Severities": severity.Names(severity.Known()),
	})
}

// taskImagePage is one image in one task container.
func (s *Server) taskImagePage(w http.ResponseWriter, r *http.Request) {
	notFound := func() {
		w.WriteHeader(http.StatusNotFound)
		s.render(w, r, "error.html", "task-images", "Not found", "There is no task image "+strconv.Quote(r.PathValue("id"))+".")
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		notFound()
		return
	}
	im, found, err := s.images.One(r.Context(), s.store, id, taskimages.Filter{})
	if err != nil {
		s.internalError(w, r, "match inventory", err)
		return
	}
	if !found {
		notFound()
		return
	}
	s.render(w, r, "taskimage.html", "task-images", im.Container+" in "+im.TaskFamily, map[string]any{"Image": im})
}
