//go:build linux && (amd64 || arm64) && !nodlopen

package isal

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/internal/testenv"
)

// hostileC is a library with ISA-L's three inflate symbols that misbehaves
// as MODE says, on the state layout this package writes.
const hostileC = `#include <stdint.h>
#include <string.h>
#include <dlfcn.h>
#define F(T, off) ((T *)((char *)s + (off)))
#if MODE == 6 /* the real ISA-L, found with dlopen */
static void *real(const char *sym) {
	static void *h;
	if (!h) h = dlopen("libisal.so.2", RTLD_NOW | RTLD_LOCAL);
	return h ? dlsym(h, sym) : 0;
}
void isal_inflate_init(void *s) { ((void (*)(void *))real("isal_inflate_init"))(s); }
void isal_inflate_reset(void *s) { ((void (*)(void *))real("isal_inflate_reset"))(s); }
#else
void isal_inflate_init(void *s) { (void)s; }
void isal_inflate_reset(void *s) { (void)s; }
#endif
int isal_inflate(void *s) {
	uint8_t **next_out = F(uint8_t *, %d), **next_in = F(uint8_t *, %d);
	uint32_t *avail_out = F(uint32_t, %d), *avail_in = F(uint32_t, %d), *block_state = F(uint32_t, %d);
#if MODE == 6 /* inflates as ISA-L does, but hides a bad checksum: says the member ended */
	int ret = ((int (*)(void *))real("isal_inflate"))(s);
	(void)next_out; (void)next_in; (void)avail_out; (void)avail_in;
	if (ret == -6) { *block_state = 5; return 0; }
	return ret;
#elif MODE == 1 /* copies the input through and says the member ended: no gzip, no checksum */
	uint32_t n = *avail_in < *avail_out ? *avail_in : *avail_out;
	memcpy(*next_out, *next_in, n);
	*next_out += n; *next_in += n; *avail_out -= n; *avail_in -= n;
	*block_state = 5;
	return 0;
#elif MODE == 2 /* says it made more output than there was room for */
	*avail_out = 0xffffffffu;
	(void)next_out; (void)next_in; (void)avail_in; (void)block_state;
	return 0;
#elif MODE == 3 /* says it used more input than it was given */
	*avail_in = 0xffffffffu;
	(void)next_out; (void)next_in; (void)avail_out; (void)block_state;
	return 0;
#elif MODE == 4 /* does nothing: no input taken, no output made */
	(void)next_out; (void)next_in; (void)avail_out; (void)avail_in; (void)block_state;
	return 0;
#else /* an error code ISA-L does not have, at once */
	(void)next_out; (void)next_in; (void)avail_out; (void)avail_in; (void)block_state;
	return -77;
#endif
}
`

// hostileLibrary builds hostileC in MODE mode as a shared library.
func hostileLibrary(t *testing.T, mode int) string {
	t.Helper()
	cc := testenv.LookPath(t, "cc", "gcc")
	dir := t.TempDir()
	src := filepath.Join(dir, "hostile.c")
	code := fmt.Sprintf(hostileC, offNextOut, offNextIn, offAvailOut, offAvailIn, offBlockState)
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, fmt.Sprintf("libhostile%d.so", mode))
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-O1", fmt.Sprintf("-DMODE=%d", mode), "-o", lib, src, "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	return lib
}

// TestHostileLibrary: a library that has ISA-L's symbols but does not
// inflate as ISA-L does — no gzip parsing or checksum, a bad checksum
// hidden, impossible byte counts, no progress, unknown error codes — fails
// Load's self-test with
// an error (no panic, no hang, no out-of-range slice), and a scan with it
// named in TASKGUARD_ISAL_LIBRARY goes through the Go inflater and reads
// every file.
func TestHostileLibrary(t *testing.T) {
	cases := []struct {
		mode int
		want string
	}{
		{1, "unlike compress/gzip"},
		{2, "reported"},
		{3, "reported"},
		{4, "made no progress"},
		{5, "inflate error -77"},
		{6, "a bad CRC-32 was not detected"},
	}
	libs := map[int]string{}
	for _, c := range cases {
		if c.mode == 6 {
			library(t) // it wraps the real one
		}
		lib := hostileLibrary(t, c.mode)
		libs[c.mode] = lib
		l, err := Load(lib)
		if err == nil {
			t.Fatalf("mode %d: Load(%s) = %v, want a self-test error", c.mode, lib, l)
		}
		if !strings.Contains(err.Error(), "self-test") || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), lib) {
			t.Fatalf("mode %d: %v, want a self-test error with %q naming the library", c.mode, err, c.want)
		}
	}

	layer := realTar(t, "src/encoding")
	archive := writeArchive(t, realGzip(t, layer, "-6"))
	want := tarFiles(t, layer)
	res, log := runChild(t, archive, EnvLibrary+"="+libs[1])
	if res.Err != "" || res.Inflater != "go" {
		t.Fatalf("scan with a hostile library: inflater %q, error %q; log:\n%s", res.Inflater, res.Err, log)
	}
	if !strings.Contains(log, "self-test") {
		t.Fatalf("the debug line does not say why ISA-L is not used; log:\n%s", log)
	}
	if len(res.Files) != len(want) {
		t.Fatalf("%d files, want %d", len(res.Files), len(want))
	}
	for p, sum := range want {
		if res.Files[p] != sum {
			t.Fatalf("%s: %q, want %q", p, res.Files[p], sum)
		}
	}
}
