package inventory

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/taskguard/taskguard/internal/testenv"
)

// benchRoot is TASKGUARD_BENCH_TREE (made by bench/inventory/mktree), or a
// tree of TASKGUARD_BENCH_FILES files (default 100000) generated for the run.
func benchRoot(b *testing.B) string {
	if dir := os.Getenv("TASKGUARD_BENCH_TREE"); dir != "" {
		return dir
	}
	files := 100000
	if v, err := strconv.Atoi(os.Getenv("TASKGUARD_BENCH_FILES")); err == nil && v > 1 {
		files = v
	}
	root := b.TempDir()
	cmd := exec.Command("go", "run", "./bench/inventory/mktree", root, strconv.Itoa(files))
	cmd.Dir = testenv.RepoRoot(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("mktree: %v\n%s", err, out)
	}
	return root
}

// BenchmarkScanTree scans a generated tree without throttling and reports
// files per second and the peak Go heap (the memory a scan needs does not
// grow with the number of files).
func BenchmarkScanTree(b *testing.B) {
	root := benchRoot(b)
	var peak uint64
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
		}
	}()
	files := 0
	for b.Loop() {
		inv, err := Scan(context.Background(), Options{Root: root, CPUBudget: 1})
		if err != nil {
			b.Fatal(err)
		}
		files = inv.Files
	}
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(files)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
