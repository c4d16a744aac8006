// Package clitest holds test helpers for the callers of the CI commands
// (cli, the GitHub Action, the Jenkins library): a loopback registry that
// stalls like a hung registry, DB mirror or proxy does.
package clitest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is go-containerregistry's in-memory registry on loopback, behind
// a handler that can stall chosen requests: the manifests of a repository
// (the connection is accepted and no answer ever comes), or the layers of
// an image (the manifest and config are answered, then a layer's response
// headers are sent and its body never is). A stalled request waits until
// its client goes away or the test ends, so the server always closes.
type Registry struct {
	// Host is host:port of the registry, for references.
	Host string

	inner   http.Handler
	done    chan struct{}
	stalled atomic.Int64

	mu        sync.Mutex
	manifests map[string]bool  // repositories whose manifests stall
	layers    map[string]int64 // layer digests that stall → their size
}

// StartRegistry starts a Registry for the test; it closes when the test ends.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	r := &Registry{
		inner:     registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		done:      make(chan struct{}),
		manifests: map[string]bool{},
		layers:    map[string]int64{},
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	// Runs before srv.Close (cleanups run last-in first-out): stalled
	// requests end, so that Close does not wait for them.
	t.Cleanup(func() { close(r.done) })
	r.Host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// Push writes img to the registry as repo:tag and returns its reference.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) string {
	t.Helper()
	ref := r.Host + "/" + repoTag
	tag, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// StallManifests makes every manifest request of the repository (e.g.
// "mirror/trivy-db") hang without an answer.
func (r *Registry) StallManifests(repo string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifests[repo] = true
}

// StallLayers makes the layers of img send their headers and then no byte
// of their bodies; its manifest and config are answered as usual.
func (r *Registry) StallLayers(t testing.TB, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		r.layers[d.String()] = size
	}
}

// Stalled is how many requests were stalled so far: a test that expects
// its command to give up on a stall checks that it reached one.
func (r *Registry) Stalled() int { return int(r.stalled.Load()) }

// ServeHTTP answers as the registry does, but for the requests to stall.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	repo, kind, last := splitPath(req.URL.Path)
	r.mu.Lock()
	stallManifest := kind == "manifests" && r.manifests[repo]
	size, stallLayer := r.layers[last]
	stallLayer = stallLayer && kind == "blobs" && req.Method == http.MethodGet
	r.mu.Unlock()
	switch {
	case stallManifest:
		r.stall(req)
	case stallLayer:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Docker-Content-Digest", last)
		w.WriteHeader(http.StatusOK)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		r.stall(req)
	default:
		r.inner.ServeHTTP(w, req)
	}
}

func (r *Registry) stall(req *http.Request) {
	r.stalled.Add(1)
	select {
	case <-req.Context().Done():
	case <-r.done:
	}
}

// splitPath splits /v2/<repo>/<kind>/<last> (kind: manifests or blobs).
func splitPath(p string) (repo, kind, last string) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", ""
	}
	for _, k := range []string{"/manifests/", "/blobs/"} {
		if i := strings.LastIndex(rest, k); i > 0 {
			return rest[:i], strings.Trim(k, "/"), rest[i+len(k):]
		}
	}
	return "", "", ""
}
