package server

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
)

// badFamilies are task family names ECS refuses, with what the console's
// answer must say about each.
var badFamilies = []struct{ name, family, want string }{
	{"path traversal", "../etc", `character '.' at byte 0`},
	{"space", "shop web", `character ' ' at byte 4`},
	{"300 characters", strings.Repeat("a", 300), "300 characters, ECS allows at most 255"},
	{"slash", "shop/web", `character '/' at byte 4`},
	{"NUL", "shop\x00web", `at byte 4`},
	{"non-ASCII", "shöp", `at byte 2`},
}

// TestTaskFamilyValidatedOnEveryEntry: wherever a task family enters the
// console (an admin's inventory or audits, a scan report, protect with a
// secret ARN or a minted token, a list filter) a name ECS would refuse is
// answered 400 (for an audit batch: that record is refused, named) with a
// message naming the field, and a valid name is accepted.
func TestTaskFamilyValidatedOnEveryEntry(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	admin := basic(auth.RoleAdmin)
	arn := url.QueryEscape("arn:aws:secretsmanager:eu-west-1:123456789012:secret:tg-agent")
	inventory := func(family string) string {
		b, _ := json.Marshal(api.Inventory{TaskFamily: family, Container: "web", Hash: "sha256:1", Packages: []api.InventoryPackage{}})
		return string(b)
	}
	scan := func(family string) string {
		b, _ := json.Marshal(map[string]any{"schemaVersion": 1, "result": "passed", "task": map[string]string{"path": "t.json", "family": family}})
		return string(b)
	}
	task := func(family string) string {
		b, _ := json.Marshal(map[string]any{"family": family, "containerDefinitions": []any{
			map[string]any{"name": "app", "image": "registry.example/app:1", "entryPoint": []string{"/app"}, "essential": true}}})
		return string(b)
	}
	type entry struct {
		name      string
		method    string
		path      func(family string) string
		body      func(family string) string
		field     string // the field the 400 names
		okStatus  int
		required  bool // an empty family is refused too
		emptyWant string
	}
	entries := []entry{
		{name: "admin inventory", method: "POST", path: func(string) string { return api.PathAgentInventory }, body: inventory,
			field: "request body: taskFamily", okStatus: 204, required: true},
		{name: "scan report", method: "POST", path: func(string) string { return api.PathScans }, body: scan,
			field: "request body: task.family", okStatus: 201},
		{name: "protect with secret ARN", method: "POST", path: func(string) string { return fargatePath + "&agentTokenSecret=" + arn }, body: task,
			field: `invalid task definition: "family"`, okStatus: 200, required: true, emptyWant: `it has no "family"`},
		{name: "protect minting a token", method: "POST", path: func(string) string { return fargatePath }, body: task,
			field: `invalid task definition: "family"`, okStatus: 200, required: true, emptyWant: `it has no "family"`},
		{name: "runtime audits filter", method: "GET", path: func(f string) string { return api.PathRuntimeAudits + "?task=" + url.QueryEscape(f) },
			body: func(string) string { return "" }, field: "task: invalid task family", okStatus: 200},
		{name: "task images filter", method: "GET", path: func(f string) string { return api.PathTaskImages + "?task=" + url.QueryEscape(f) },
			body: func(string) string { return "" }, field: "task: ", okStatus: 200},
	}
	for _, en := range entries {
		t.Run(en.name, func(t *testing.T) {
			if r := e.do(en.method, en.path("shop-web_2"), admin, en.body("shop-web_2")); r.status != en.okStatus {
				t.Fatalf("valid family: %d %s, want %d", r.status, r.body, en.okStatus)
			}
			cases := badFamilies
			if en.name == "task images filter" {
				// A glob: its metacharacters are allowed, the rest is checked.
				cases = []struct{ name, family, want string }{
					{"path traversal", "../etc", `character '.' at byte 0`},
					{"space", "shop web*", `character ' ' at byte 4`},
					{"300 characters", strings.Repeat("a", 300), "300 characters"},
				}
				if r := e.do("GET", api.PathTaskImages+"?task="+url.QueryEscape("shop-*"), admin, ""); r.status != 200 {
					t.Errorf("glob shop-*: %d %s", r.status, r.body)
				}
			}
			for _, bad := range cases {
				r := e.do(en.method, en.path(bad.family), admin, en.body(bad.family))
				if r.status != 400 {
					t.Errorf("%s: %d %s, want 400", bad.name, r.status, r.body)
					continue
				}
				if msg := errorMessage(t, r.body); !strings.Contains(msg, en.field) || !strings.Contains(msg, bad.want) {
					t.Errorf("%s: error %q, want it to name %q and say %q", bad.name, msg, en.field, bad.want)
				}
			}
			r := e.do(en.method, en.path(""), admin, en.body(""))
			switch {
			case en.required && r.status != 400:
				t.Errorf("empty family: %d %s, want 400", r.status, r.body)
			case en.required:
				want := en.emptyWant
				if want == "" {
					want = en.field + ": invalid task family: it is empty"
				}
				if msg := errorMessage(t, r.body); !strings.Contains(msg, want) {
					t.Errorf("empty family: error %q, want %q", msg, want)
				}
			case r.status != en.okStatus:
				t.Errorf("empty family (optional here): %d %s, want %d", r.status, r.body, en.okStatus)
			}
		})
	}
}

// TestAuditFilterTaskARN: ?task= of an audit list also takes a task ARN.
func TestAuditFilterTaskARN(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	for _, tc := range []struct {
		task string
		want int
	}{
		{"arn:aws:ecs:eu-west-1:123456789012:task/prod/0123456789abcdef0123456789abcdef", 200},
		{"0123456789abcdef0123456789abcdef", 200},
		{"arn:aws:ecs:eu-west-1:123456789012:task/prod/a b", 400},
		{"arn:aws:s3:::bucket/../etc", 400},
	} {
		if r := e.do("GET", api.PathRuntimeAudits+"?task="+url.QueryEscape(tc.task), basic(auth.RoleAuditor), ""); r.status != tc.want {
			t.Errorf("task=%q: %d %s, want %d", tc.task, r.status, r.body, tc.want)
		}
	}
}

// TestAdminAuditFamilies: an admin's batch is stored record by record; a
// record naming an invalid family is refused by name (audits[i].taskFamily),
// the others are stored. An agent token's records take the token's family,
// whatever they say, so they are never refused for it.
func TestAdminAuditFamilies(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	var recs []string
	for i, bad := range badFamilies {
		fam, _ := json.Marshal(bad.family)
		recs = append(recs, fmt.Sprintf(`{"id":"bad-%d","kind":"dns","taskFamily":%s}`, i, fam))
	}
	recs = append(recs, `{"id":"good","kind":"dns","taskFamily":"shop-web"}`, `{"id":"none","kind":"dns"}`)
	body := `{"audits":[` + strings.Join(recs, ",") + `]}`
	r := e.do("POST", api.PathAgentAudits, basic(auth.RoleAdmin), body)
	if r.status != 202 {
		t.Fatalf("admin POST: %d %s", r.status, r.body)
	}
	var res api.AuditIngestResponse
	if err := json.Unmarshal([]byte(r.body), &res); err != nil {
		t.Fatal(err)
	}
	if res.Stored != 2 || len(res.Rejected) != len(badFamilies) {
		t.Fatalf("answer = %+v; want 2 stored, %d rejected", res, len(badFamilies))
	}
	for i, rej := range res.Rejected {
		field := fmt.Sprintf("audits[%d].taskFamily", i)
		if rej.Index != i || rej.ID != fmt.Sprintf("bad-%d", i) || !strings.Contains(rej.Reason, field) || !strings.Contains(rej.Reason, badFamilies[i].want) {
			t.Errorf("rejected[%d] = %+v; want %s saying %q", i, rej, field, badFamilies[i].want)
		}
	}
	body = strings.ReplaceAll(body, `"id":"`, `"id":"agent-`)
	r = e.do("POST", api.PathAgentAudits, "bearer "+agentToken(t, e, "shop-api"), body)
	res = api.AuditIngestResponse{}
	if err := json.Unmarshal([]byte(r.body), &res); r.status != 202 || err != nil || res.Stored != len(recs) || len(res.Rejected) != 0 {
		t.Errorf("agent POST: %d %s; want every record stored under shop-api", r.status, r.body)
	}
	page := e.do("GET", api.PathRuntimeAudits+"?task=shop-api", basic(auth.RoleAuditor), "")
	var ap api.AuditPage
	if err := json.Unmarshal([]byte(page.body), &ap); err != nil || len(ap.Audits) != len(recs) {
		t.Errorf("audits of shop-api: %d %s; want %d", page.status, page.body, len(recs))
	}
}
