package fargate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzProtectJSON: any input either fails with an error or protects into a
// task definition that fits the ECS model (botocore's, from Debian's
// package), starts in an order ECS can satisfy, parses again and re-protects
// to the same bytes.
func FuzzProtectJSON(f *testing.F) {
	model := loadBotocoreModel(f)
	files, _ := filepath.Glob(filepath.Join(taskdefDir, "*.json"))
	corpus, _ := filepath.Glob(filepath.Join(taskdefDir, "corpus", "*.json"))
	files = append(files, corpus...)
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"taskDefinition":{"containerDefinitions":[{"name":"a","image":"i","entryPoint":[]}]},"tags":[]}`))
	f.Add([]byte(`{"containerDefinitions":[{"name":"a","image":"i","entryPoint":["/var/lib/taskguard/defender","entrypoint","--"]}]}`))
	f.Add([]byte(`{"family":"f","containerDefinitions":[{"name":"a","image":"i","entryPoint":["x"],"command":null,"linuxParameters":{"capabilities":null}},{"name":"r","image":"fb","firelensConfiguration":{"type":"fluentbit"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ProtectJSON(context.Background(), data, Options{})
		if err != nil {
			return
		}
		probs, err := model.Validate(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range probs {
			if !p.Unknown {
				t.Fatalf("protected output does not fit the ECS model: %s\n%s", p, out)
			}
		}
		td, err := Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := td.StartOrder(); err != nil {
			t.Fatalf("protected output cannot start: %v\n%s", err, out)
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
