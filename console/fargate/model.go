package fargate

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
)

// ecsModelJSON is the part of the ECS API model (botocore's
// data/ecs/2014-11-13/service-2.json, Apache-2.0) that describes the
// RegisterTaskDefinition input: the shapes it reaches, with their types,
// members, required members and length bounds, documentation removed.
// TestModelMatchesBotocore rewrites it from Debian's python3-botocore with
// -update and fails when it drifts.
//
//go:embed ecsmodel.json
var ecsModelJSON []byte

// Model is the shape of an API operation's input, as the AWS SDKs validate
// parameters before sending them (botocore's ParamValidator).
type Model struct {
	// Input is the name of the input shape.
	Input  string            `json:"input"`
	Shapes map[string]*Shape `json:"shapes"`
}

// Shape is one type of the model.
type Shape struct {
	Type     string              `json:"type"`
	Members  map[string]ShapeRef `json:"members,omitempty"`
	Required []string            `json:"required,omitempty"`
	Member   *ShapeRef           `json:"member,omitempty"`
	Key      *ShapeRef           `json:"key,omitempty"`
	Value    *ShapeRef           `json:"value,omitempty"`
	Min      *int64              `json:"min,omitempty"`
	Max      *int64              `json:"max,omitempty"`
}

// ShapeRef names a shape.
type ShapeRef struct {
	Shape string `json:"shape"`
}

var (
	registerModelOnce sync.Once
	registerModel     *Model
	registerModelErr  error
)

// RegisterTaskDefinitionModel returns the embedded model of the
// RegisterTaskDefinition input.
func RegisterTaskDefinitionModel() (*Model, error) {
	registerModelOnce.Do(func() {
		var m Model
		if err := json.Unmarshal(ecsModelJSON, &m); err != nil {
			registerModelErr = fmt.Errorf("embedded ECS model: %w", err)
			return
		}
		registerModel, registerModelErr = &m, m.check()
	})
	return registerModel, registerModelErr
}

// LoadServiceModel reads a botocore service-2.json and keeps what operation's
// input reaches (e.g. "RegisterTaskDefinition").
func LoadServiceModel(r io.Reader, operation string) (*Model, error) {
	var svc struct {
		Operations map[string]struct {
			Input *ShapeRef `json:"input"`
		} `json:"operations"`
		Shapes map[string]*Shape `json:"shapes"`
	}
	if err := json.NewDecoder(r).Decode(&svc); err != nil {
		return nil, fmt.Errorf("read service model: %w", err)
	}
	op, ok := svc.Operations[operation]
	if !ok || op.Input == nil {
		return nil, fmt.Errorf("service model has no operation %q with an input", operation)
	}
	m := &Model{Input: op.Input.Shape, Shapes: map[string]*Shape{}}
	var walk func(name string) error
	walk = func(name string) error {
		if _, done := m.Shapes[name]; done {
			return nil
		}
		s, ok := svc.Shapes[name]
		if !ok {
			return fmt.Errorf("service model: shape %q is missing", name)
		}
		m.Shapes[name] = s
		for _, ref := range s.refs() {
			if err := walk(ref); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(m.Input); err != nil {
		return nil, err
	}
	return m, m.check()
}

func (s *Shape) refs() []string {
	var out []string
	for _, r := range s.Members {
		out = append(out, r.Shape)
	}
	for _, r := range []*ShapeRef{s.Member, s.Key, s.Value} {
		if r != nil {
			out = append(out, r.Shape)
		}
	}
	return out
}

func (m *Model) check() error {
	if _, ok := m.Shapes[m.Input]; !ok {
		return fmt.Errorf("model: input shape %q is missing", m.Input)
	}
	for name, s := range m.Shapes {
		for _, r := range s.refs() {
			if _, ok := m.Shapes[r]; !ok {
				return fmt.Errorf("model: shape %q refers to missing %q", name, r)
			}
		}
	}
	return nil
}

// MarshalIndent writes the model with sorted keys, one member per line.
func (m *Model) MarshalIndent() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", " "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Problem is one way a document does not fit the model.
type Problem struct {
	// Path names the parameter as the AWS CLI does: containerDefinitions[0].command.
	Path string
	// Message says what is wrong.
	Message string
	// Unknown is true for a parameter the model does not know. Newer APIs
	// than the model's may know it; protect keeps such fields.
	Unknown bool
}

func (p Problem) String() string { return p.Path + ": " + p.Message }

// Validate checks a JSON document against the model's input shape the way
// botocore's ParamValidator does: required members present, every value of
// its member's type (JSON null is no value of any type), lengths and
// integers not below their minimum, lists not above their maximum. The
// problems come out sorted by path.
func (m *Model) Validate(doc []byte) ([]Problem, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	var probs []Problem
	m.validate(m.Input, v, "", &probs)
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Path < probs[j].Path })
	return probs, nil
}

func join(path, member string) string {
	if path == "" {
		return member
	}
	return path + "." + member
}

func kind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		if strings.ContainsAny(x.String(), ".eE") {
			return "a fractional number"
		}
		return "an integer"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func (m *Model) validate(shapeName string, v any, path string, probs *[]Problem) {
	s := m.Shapes[shapeName]
	bad := func(want string) {
		at := path
		if at == "" {
			at = "(the task definition)"
		}
		*probs = append(*probs, Problem{Path: at, Message: fmt.Sprintf("expected %s, found %s", want, kind(v))})
	}
	switch s.Type {
	case "structure":
		obj, ok := v.(map[string]any)
		if !ok {
			bad("an object")
			return
		}
		for _, r := range s.Required {
			if _, ok := obj[r]; !ok {
				*probs = append(*probs, Problem{Path: join(path, r), Message: "missing required parameter"})
			}
		}
		for _, k := range sortedMapKeys(obj) {
			ref, ok := s.Members[k]
			if !ok {
				*probs = append(*probs, Problem{Path: join(path, k), Message: "unknown parameter (not in the ECS API model)", Unknown: true})
				continue
			}
			m.validate(ref.Shape, obj[k], join(path, k), probs)
		}
	case "list":
		list, ok := v.([]any)
		if !ok {
			bad("an array")
			return
		}
		m.checkLen(s, len(list), path, "entries", probs)
		for i, e := range list {
			m.validate(s.Member.Shape, e, fmt.Sprintf("%s[%d]", path, i), probs)
		}
	case "map":
		obj, ok := v.(map[string]any)
		if !ok {
			bad("an object")
			return
		}
		for _, k := range sortedMapKeys(obj) {
			m.validate(s.Value.Shape, obj[k], path+"."+k, probs)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			bad("a string")
			return
		}
		m.checkLen(s, len(str), path, "characters", probs)
	case "integer", "long":
		n, ok := v.(json.Number)
		if !ok || strings.ContainsAny(n.String(), ".eE") {
			bad("an integer")
			return
		}
		if i, err := n.Int64(); err == nil && s.Min != nil && i < *s.Min {
			*probs = append(*probs, Problem{Path: path, Message: fmt.Sprintf("%d is below the minimum %d", i, *s.Min)})
		}
	case "double", "float":
		if _, ok := v.(json.Number); !ok {
			bad("a number")
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("a boolean")
		}
	case "timestamp":
		switch v.(type) {
		case string, json.Number:
		default:
			bad("a timestamp")
		}
	default:
		*probs = append(*probs, Problem{Path: path, Message: fmt.Sprintf("model shape %q has unsupported type %q", shapeName, s.Type)})
	}
}

func (m *Model) checkLen(s *Shape, n int, path, unit string, probs *[]Problem) {
	if s.Min != nil && int64(n) < *s.Min {
		*probs = append(*probs, Problem{Path: path, Message: fmt.Sprintf("has %d %s, at least %d needed", n, unit, *s.Min)})
	}
	if s.Max != nil && int64(n) > *s.Max {
		*probs = append(*probs, Problem{Path: path, Message: fmt.Sprintf("has %d %s, at most %d allowed", n, unit, *s.Max)})
	}
}

func sortedMapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
