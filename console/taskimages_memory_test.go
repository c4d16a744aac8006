package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/taskguard/taskguard/console/api"
)

// taskImagesRSSBound is the peak resident set size the console must stay
// under while it takes hostileInventories near-16 MiB inventories from one
// agent token and lists its task images four times at once.
const taskImagesRSSBound = 400 << 20

// hostileInventories is how many distinct containers the hostile agent
// fills: all of them were held at once by a listing before it streamed.
const hostileInventories = 24

// hostileInventory is an inventory body just under the 16 MiB upload limit:
// tens of thousands of packages with long names, for container i.
func hostileInventory(pkgs []byte, i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"time":"2026-12-03T10:00:00Z","taskId":"task-%d","container":"c-%d","image":"hostile/app:1","hash":"sha256:%d","packages":[`, i, i, i)
	b.Write(pkgs)
	b.WriteString("]}")
	return b.Bytes()
}

// TestTaskImagesListingMemory: an agent token posts hostileInventories
// distinct containers of near-16 MiB inventories to a real console process,
// four at a time; listing the task images (four lists at once) reads them
// one by one, and the process's peak RSS stays under taskImagesRSSBound.
func TestTaskImagesListingMemory(t *testing.T) {
	if raceEnabled {
		// make test runs this package without -race first; that run checks the bound.
		t.Skip("the race detector's shadow memory multiplies RSS: the bound is checked by the run without -race")
	}
	p := startConsoleProcess(t, t.TempDir())
	token := protectForToken(t, p)
	ctx := context.Background()
	base := p.peakRSS(t)

	var pkgs bytes.Buffer
	long := strings.Repeat("x", 120)
	for i := 0; pkgs.Len() < 16<<20-4096; i++ {
		if i > 0 {
			pkgs.WriteByte(',')
		}
		fmt.Fprintf(&pkgs, `{"type":"dpkg","name":"lib%s-%06d","version":"1.0.%d","location":{"path":"/var/lib/dpkg/status"}}`, long, i, i)
	}
	// Four uploads at a time, as many defenders would.
	post := func(i int) {
		body := hostileInventory(pkgs.Bytes(), i)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url+api.PathAgentInventory, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := p.client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("post inventory %d (%d bytes): %d %s", i, len(body), resp.StatusCode, msg)
		}
	}
	var uploads sync.WaitGroup
	for w := range 4 {
		uploads.Go(func() {
			for i := w; i < hostileInventories; i += 4 {
				post(i)
			}
		})
	}
	uploads.Wait()
	if t.Failed() {
		t.FailNow()
	}
	filled := p.peakRSS(t)

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+api.PathTaskImages+"?task=load", nil)
			req.SetBasicAuth("ops", "ops-password-1")
			resp, err := p.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var list api.TaskImageList
			if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 {
				t.Errorf("list task images: %d, %v", resp.StatusCode, err)
				return
			}
			if len(list.Images) != hostileInventories || list.Images[0].Packages < 50000 {
				t.Errorf("listed %d images (want %d), the first with %d packages", len(list.Images), hostileInventories, list.Images[0].Packages)
			}
		})
	}
	wg.Wait()
	peak := p.peakRSS(t)
	t.Logf("console peak RSS: %d MiB at start, %d MiB after %d inventories of %d MiB, %d MiB after 4 concurrent listings (bound %d MiB)",
		base>>20, filled>>20, hostileInventories, pkgs.Len()>>20, peak>>20, taskImagesRSSBound>>20)
	if peak > taskImagesRSSBound {
		t.Errorf("peak RSS %d MiB, over the bound of %d MiB", peak>>20, taskImagesRSSBound>>20)
	}
}
