package image

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// countingFile counts the bytes read from an archive file.
type countingFile struct {
	*os.File
	n *int64
}

func (c countingFile) Read(p []byte) (int, error) {
	n, err := c.File.Read(p)
	*c.n += int64(n)
	return n, err
}

// TestYieldingOpenerSeeks: the archive reader ggcr gets for the digest
// still seeks, so that finding an entry behind a large layer does not
// read the layer (without Seek, tar reads every byte it passes over).
func TestYieldingOpenerSeeks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	big := text(8<<20, 3)
	for _, e := range []struct {
		name string
		body []byte
	}{{"layer.tar", big}, {"manifest.json", []byte(`[]`)}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var read int64
	open := yieldingOpener(func() (io.ReadCloser, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		return countingFile{f, &read}, nil
	})
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(io.Seeker); !ok {
		t.Fatal("the yielding reader of a file does not seek")
	}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("no manifest.json: %v", err)
		}
		if hdr.Name == "manifest.json" {
			break
		}
	}
	got, err := io.ReadAll(tr)
	if err != nil || string(got) != "[]" {
		t.Fatalf("manifest.json: %q, %v", got, err)
	}
	if read > 1<<20 {
		t.Fatalf("read %d bytes of the archive to reach the entry behind an 8 MiB one", read)
	}
}
