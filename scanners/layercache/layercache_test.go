package layercache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPutGet(t *testing.T) {
	c, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := Key("sha256:abc", "analyzers/1")
	if _, ok, err := c.Get(k); ok || err != nil {
		t.Fatalf("empty cache: ok %v err %v", ok, err)
	}
	if err := c.Put(k, []byte("index")); err != nil {
		t.Fatal(err)
	}
	b, ok, err := c.Get(k)
	if err != nil || !ok || string(b) != "index" {
		t.Fatalf("Get = %q %v %v", b, ok, err)
	}
	if Key("a", "bc") == Key("ab", "c") {
		t.Error("Key does not separate its parts")
	}
	for _, bad := range []string{"", "../../etc/passwd", "ABCDEF0123", strings.Repeat("a", 200)} {
		if err := c.Put(bad, nil); err == nil {
			t.Errorf("Put(%q) accepted an invalid key", bad)
		}
		if _, _, err := c.Get(bad); err == nil {
			t.Errorf("Get(%q) accepted an invalid key", bad)
		}
	}
}

func TestCorruptEntry(t *testing.T) {
	c, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, damage := range []func([]byte) []byte{
		func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		func(b []byte) []byte { return b[:len(b)-3] },
		func(b []byte) []byte { return append(b, 'x') },
		func(b []byte) []byte { b[0] = 'X'; return b },
		func([]byte) []byte { return nil },
	} {
		k := Key(strconv.Itoa(i))
		if err := c.Put(k, []byte("some layer index")); err != nil {
			t.Fatal(err)
		}
		p := c.path(k)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, damage(b), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := c.Get(k); ok || !errors.Is(err, ErrCorrupt) {
			t.Errorf("damage %d: ok %v err %v, want ErrCorrupt", i, ok, err)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("damage %d: corrupt entry not removed (%v)", i, err)
		}
	}
}

func TestEvictionKeepsRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir, Options{MaxBytes: 3500})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 1000)
	old := time.Now().Add(-time.Hour)
	for i := range 3 {
		k := Key(strconv.Itoa(i))
		if err := c.Put(k, data); err != nil {
			t.Fatal(err)
		}
		// Entries 0, 1, 2 last used in that order.
		ts := old.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(c.path(k), ts, ts); err != nil {
			t.Fatal(err)
		}
	}
	// Using 0 makes 1 the least recently used.
	if _, ok, err := c.Get(Key("0")); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := c.Put(Key("3"), data); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, true, true} {
		_, err := os.Stat(c.path(Key(strconv.Itoa(i))))
		if got := err == nil; got != want {
			t.Errorf("entry %d present = %v, want %v", i, got, want)
		}
	}
	if n, err := c.Size(); err != nil || n > 3500 {
		t.Errorf("size %d (%v), bound 3500", n, err)
	}
	if err := c.Clean(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Size(); err != nil || n != 0 {
		t.Errorf("after Clean: size %d (%v)", n, err)
	}
}

// The helper process of TestConcurrentProcesses: writes and reads the
// same keys as its sibling.
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv("LAYERCACHE_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	c, err := Open(dir, Options{MaxBytes: 40 << 10})
	if err != nil {
		t.Fatal(err)
	}
	who := os.Getenv("LAYERCACHE_HELPER_WHO")
	for round := range 200 {
		k := Key(strconv.Itoa(round % 50))
		// Each key's content depends on the key only, so that whatever
		// writer wins, a reader must see exactly it.
		want := payload(round % 50)
		if err := c.Put(k, want); err != nil {
			t.Fatalf("%s: put: %v", who, err)
		}
		got, ok, err := c.Get(Key(strconv.Itoa((round + 7) % 50)))
		if err != nil {
			t.Fatalf("%s: get: %v", who, err)
		}
		if ok && !bytes.Equal(got, payload((round+7)%50)) {
			t.Fatalf("%s: read a mixed entry", who)
		}
	}
}

func payload(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("entry %d;", i)), 300)
}

// TestConcurrentProcesses: two processes share a cache directory, writing
// and reading the same keys and evicting (the bound holds about half the
// entries); neither ever reads a damaged or mixed entry, and what is left
// is whole.
func TestConcurrentProcesses(t *testing.T) {
	dir := t.TempDir()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for _, who := range []string{"a", "b"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), "LAYERCACHE_HELPER_DIR="+dir, "LAYERCACHE_HELPER_WHO="+who)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer %d: %v\n%s", i, err, outs[i])
		}
	}
	c, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for i := range 50 {
		got, ok, err := c.Get(Key(strconv.Itoa(i)))
		if err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
		if ok {
			found++
			if !bytes.Equal(got, payload(i)) {
				t.Errorf("entry %d holds the wrong data", i)
			}
		}
	}
	if found == 0 || found == 50 {
		t.Errorf("%d of 50 entries left; the bound should keep some and evict some", found)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*", ".tmp-*"))
	if len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}
