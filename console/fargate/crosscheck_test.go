package fargate

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// mutateJSON changes one value of a JSON document, chosen by r: to null, a
// number, a string, an empty list or object, a boolean, or removes it.
func mutateJSON(t *testing.T, doc []byte, r *rand.Rand) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		t.Fatal(err)
	}
	type slot struct {
		set func(any)
		del func()
	}
	var slots []slot
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				slots = append(slots, slot{func(n any) { x[k] = n }, func() { delete(x, k) }})
				walk(x[k])
			}
		case []any:
			for i := range x {
				slots = append(slots, slot{func(n any) { x[i] = n }, nil})
				walk(x[i])
			}
		}
	}
	walk(root)
	s := slots[r.IntN(len(slots))]
	values := []any{nil, json.Number("7"), json.Number("2.5"), "x", "", []any{}, map[string]any{}, true}
	if i := r.IntN(len(values) + 1); i == len(values) && s.del != nil {
		s.del()
	} else {
		s.set(values[i%len(values)])
	}
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFuzzedCorpusAgainstBotocore: for a fuzzed corpus (every task definition under
// testdata/taskdef with one value mutated, 400 documents from a fixed seed),
// the Go validator and botocore's ParamValidator give the same verdict on the
// input, and every output protect produces passes botocore.
func TestFuzzedCorpusAgainstBotocore(t *testing.T) {
	model := loadBotocoreModel(t)
	files, _ := filepath.Glob(filepath.Join(taskdefDir, "*.json"))
	corpus, _ := filepath.Glob(filepath.Join(taskdefDir, "corpus", "*.json"))
	files = append(files, corpus...)
	var seeds [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Base(f) {
		case "describe-output.json", "windows.json", "no-entrypoint.json":
			continue // not RegisterTaskDefinition input, or refused whatever the mutation
		}
		seeds = append(seeds, b)
	}
	r := rand.New(rand.NewPCG(21, 14))
	var inputs, outputs [][]byte
	for i := 0; i < 400; i++ {
		in := mutateJSON(t, seeds[i%len(seeds)], r)
		inputs = append(inputs, in)
		opts := Options{DefenderPlatforms: []string{PlatformAMD64, PlatformARM64}}
		if out, err := ProtectJSON(context.Background(), in, opts); err == nil {
			outputs = append(outputs, out)
		}
	}
	reports := botocoreValidate(t, append(append([][]byte{}, inputs...), outputs...))
	disagree := 0
	for i, in := range inputs {
		probs, err := model.Validate(in)
		if err != nil {
			t.Fatal(err)
		}
		var goProbs []string
		for _, p := range probs {
			// botocore takes a JSON boolean for an integer (Python's bool is an
			// int); ECS does not, so the Go validator refuses it.
			if p.Unknown || strings.HasSuffix(p.Message, "found a boolean") && strings.Contains(p.Message, "expected an integer") {
				continue
			}
			goProbs = append(goProbs, p.String())
		}
		if (len(goProbs) > 0) != (reports[i] != "") {
			disagree++
			if disagree <= 5 {
				t.Errorf("verdicts differ on input %d:\nGo:       %q\nbotocore: %q\n%s", i, goProbs, reports[i], in)
			}
		}
	}
	for i := range outputs {
		if rep := reports[len(inputs)+i]; rep != "" {
			t.Errorf("botocore refuses a protected output: %s\n%s", rep, outputs[i])
		}
	}
	if len(outputs) < 100 {
		t.Errorf("only %d of %d mutated tasks protected: the corpus tests little", len(outputs), len(inputs))
	}
	t.Logf("%d mutated inputs (verdicts agreed on %d), %d protected outputs all accepted by botocore", len(inputs), len(inputs)-disagree, len(outputs))
}
