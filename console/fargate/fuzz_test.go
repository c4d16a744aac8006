package fargate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzProtectJSON: any input either fails with an error or protects into a
// task definition that parses again and re-protects to the same bytes.
func FuzzProtectJSON(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(taskdefDir, "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"taskDefinition":{"containerDefinitions":[{"name":"a","image":"i","entryPoint":[]}]},"tags":[]}`))
	f.Add([]byte(`{"containerDefinitions":[{"name":"a","image":"i","entryPoint":["/var/lib/taskguard/defender","entrypoint","--"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ProtectJSON(context.Background(), data, Options{})
		if err != nil {
			return
		}
		again, err := ProtectJSON(context.Background(), out, Options{})
		if err != nil {
			t.Fatalf("protected output does not protect again: %v\n%s", err, out)
		}
		if !bytes.Equal(out, again) {
			t.Fatalf("not idempotent:\n%s\n%s", out, again)
		}
	})
}
