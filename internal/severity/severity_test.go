package severity

import (
	"encoding/json"
	"sort"
	"testing"
)

func TestOrderAndNames(t *testing.T) {
	want := []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}
	all := All()
	for i := 1; i < len(all); i++ {
		if !(all[i-1] < all[i]) {
			t.Errorf("%v not below %v", all[i-1], all[i])
		}
	}
	if got := Names(all); len(got) != len(want) || got[0] != want[0] || got[4] != want[4] {
		t.Errorf("names %q, want %q", got, want)
	}
	// Sorting names by Compare gives the scale's order.
	names := []string{"high", "Critical", "", "LOW", "medium", "bogus"}
	sort.SliceStable(names, func(i, j int) bool { return Compare(names[i], names[j]) < 0 })
	want = []string{"", "bogus", "LOW", "medium", "high", "Critical"}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("sorted %q, want %q", names, want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Severity
		ok   bool
	}{
		{"critical", Critical, true}, {"High", High, true}, {" MEDIUM ", Medium, true}, {"low", Low, true},
		{"unknown", Unknown, true}, {"severe", Unknown, false}, {"", Unknown, false},
	} {
		got, err := Parse(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("Parse(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if !AtLeast("critical", "HIGH") || AtLeast("medium", "high") || !AtLeast("LOW", "unknown") || AtLeast("bogus", "low") {
		t.Error("AtLeast misorders")
	}
	if Severity(9).String() != "UNKNOWN" {
		t.Error("off-scale value not UNKNOWN")
	}
}

func TestJSON(t *testing.T) {
	type doc struct {
		S Severity `json:"s"`
	}
	b, err := json.Marshal(doc{High})
	if err != nil || string(b) != `{"s":"HIGH"}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var d doc
	if err := json.Unmarshal([]byte(`{"s":"critical"}`), &d); err != nil || d.S != Critical {
		t.Errorf("unmarshal critical: %v %v", d.S, err)
	}
	if err := json.Unmarshal([]byte(`{"s":"severe"}`), &d); err == nil {
		t.Error("unmarshal severe: no error")
	}
	if err := json.Unmarshal([]byte(`{"s":3}`), &d); err == nil {
		t.Error("unmarshal a number: no error")
	}
}
