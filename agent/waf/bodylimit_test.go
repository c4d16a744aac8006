package waf

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/policy"
)

// largeJSON returns a valid JSON order document of about n bytes.
func largeJSON(t *testing.T, n int) []byte {
	t.Helper()
	return largeJSONNotes(t, n, 0)
}

// largeJSONNotes is largeJSON with a note of extra bytes per item (fewer
// items, so fewer arguments, for the same size).
func largeJSONNotes(t *testing.T, n, extra int) []byte {
	t.Helper()
	type item struct {
		SKU   string  `json:"sku"`
		Name  string  `json:"name"`
		Note  string  `json:"note"`
		Price float64 `json:"price"`
		Qty   int     `json:"qty"`
	}
	var items []item
	size := 0
	for i := 0; size < n; i++ {
		it := item{SKU: fmt.Sprintf("SKU-%06d", i), Name: fmt.Sprintf("Garden chair model %d", i%97),
			Note: "Deliver to the back door, it's the blue house" + strings.Repeat(" — merci", extra/10), Price: float64(i%500) + 0.99, Qty: i%7 + 1}
		items = append(items, it)
		size += 120 + extra
	}
	b, err := json.Marshal(map[string]any{"customer": "c-1042", "items": items})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, target, ctype string, body io.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.Post(target, ctype, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestNoBypassBySize sends, through the real proxy with a rule's default
// body limit, a SQL injection behind 130 KiB of padding (blocked) and large
// valid JSON, multipart and XML bodies (passed intact, no protocol violation).
func TestNoBypassBySize(t *testing.T) {
	a := newApp(t)
	_, base, rec := startProxy(t, rule(a.port(t), allProtections(policy.EffectPrevent)))

	padded := "pad=" + strings.Repeat("a", 130<<10) + "&q=" + url.QueryEscape("1' union all select password,2 from users--")
	resp, _ := post(t, base+"/search", "application/x-www-form-urlencoded", strings.NewReader(padded))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("padded SQL injection: status %d, want 403", resp.StatusCode)
	}
	if got := rec.all(); len(got) != 1 || !strings.Contains(got[0].Message, "SQL injection blocked") {
		t.Fatalf("padded SQL injection: audits %+v", got)
	}
	// Chunked (no Content-Length): blocked too.
	resp, _ = post(t, base+"/search", "application/x-www-form-urlencoded", io.MultiReader(strings.NewReader(padded)))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("chunked padded SQL injection: status %d, want 403", resp.StatusCode)
	}
	if n := len(a.requests()); n != 0 {
		t.Fatalf("app received %d attack requests", n)
	}

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("title", "Quarterly report")
	fw, _ := mw.CreateFormFile("file", "report.csv")
	for i := 0; mp.Len() < 300<<10; i++ {
		fmt.Fprintf(fw, "%d,Garden chair,%d.99,shipped\n", i, i%500)
	}
	_ = mw.Close()
	var xml bytes.Buffer
	xml.WriteString(`<?xml version="1.0" encoding="UTF-8"?><orders>`)
	for i := 0; xml.Len() < 250<<10; i++ {
		fmt.Fprintf(&xml, `<order id="%d"><customer>c-%d</customer><item sku="SKU-%06d" qty="2">Garden chair</item></order>`, i, i%300, i)
	}
	xml.WriteString(`</orders>`)
	benign := []struct {
		name, ctype string
		body        []byte
	}{
		{"200 KB JSON", "application/json", largeJSON(t, 200_000)},
		{"2 MB JSON", "application/json", largeJSONNotes(t, 2_000_000, 1000)},
		{"300 KB multipart", mw.FormDataContentType(), mp.Bytes()},
		{"250 KB XML", "application/xml", xml.Bytes()},
	}
	for _, tc := range benign {
		t.Run(tc.name, func(t *testing.T) {
			before := len(a.requests())
			resp, body := post(t, base+"/orders", tc.ctype, bytes.NewReader(tc.body))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d bytes: status %d: %.200s; audits %+v", len(tc.body), resp.StatusCode, body, rec.all()[1:])
			}
			got := a.requests()
			if len(got) != before+1 || got[before].bodySum != sha256.Sum256(tc.body) {
				t.Fatalf("app did not receive the body intact")
			}
		})
	}
	if got := rec.all(); len(got) != 2 {
		t.Errorf("benign bodies raised audits: %+v", got[2:])
	}
}

// TestOversizeEffect: beyond the rule's limit the rule decides. prevent
// answers 413 with an audit; alert forwards the body, its prefix inspected,
// and audits that the rest was not; a valid JSON body cut at the limit is
// not a protocol violation.
func TestOversizeEffect(t *testing.T) {
	const limit = 64 << 10
	body := largeJSON(t, 200_000)
	for _, tc := range []struct {
		name     string
		effect   policy.Effect
		chunked  bool
		status   int
		forwards bool
		audit    string
	}{
		{"prevent", policy.EffectPrevent, false, http.StatusRequestEntityTooLarge, false, "oversized body blocked POST /orders from 127.0.0.1: body larger than the inspection limit of 65536 bytes (" + fmt.Sprint(len(body)) + " declared)"},
		{"prevent chunked", policy.EffectPrevent, true, http.StatusRequestEntityTooLarge, false, "oversized body blocked POST /orders from 127.0.0.1: body larger than the inspection limit of 65536 bytes (event"},
		{"alert", policy.EffectAlert, false, http.StatusOK, true, "oversized body detected POST /orders from 127.0.0.1: body not inspected beyond 65536 bytes (" + fmt.Sprint(len(body)) + " declared)"},
		{"alert chunked", policy.EffectAlert, true, http.StatusOK, true, "oversized body detected POST /orders from 127.0.0.1: body not inspected beyond 65536 bytes (event"},
		{"disable", policy.EffectDisable, false, http.StatusOK, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t)
			r := rule(a.port(t), allProtections(policy.EffectPrevent))
			r.BodyLimit, r.OversizeEffect = limit, tc.effect
			_, base, rec := startProxy(t, r)
			var rd io.Reader = bytes.NewReader(body)
			if tc.chunked {
				rd = io.MultiReader(rd)
			}
			resp, _ := post(t, base+"/orders", "application/json", rd)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; audits %+v", resp.StatusCode, tc.status, rec.all())
			}
			got := a.requests()
			if tc.forwards != (len(got) == 1) || tc.forwards && got[0].bodySum != sha256.Sum256(body) {
				t.Fatalf("app requests %d, want forwarded=%v and intact", len(got), tc.forwards)
			}
			audits := rec.all()
			if tc.audit == "" {
				if len(audits) != 0 {
					t.Fatalf("audits %+v, want none", audits)
				}
				return
			}
			if len(audits) != 1 || !strings.HasPrefix(audits[0].Message, tc.audit) || audits[0].Kind != api.AuditWAF ||
				len(audits[0].WAF.Protections) != 1 || audits[0].WAF.Protections[0] != "body-limit" {
				t.Fatalf("audits %+v %+v, want one body-limit audit %q", audits, audits[0].WAF, tc.audit)
			}
		})
	}

	// alert: an attack inside the inspected prefix is still reported (and
	// blocked by its own protection's prevent).
	a := newApp(t)
	r := rule(a.port(t), allProtections(policy.EffectPrevent))
	r.BodyLimit, r.OversizeEffect = limit, policy.EffectAlert
	_, base, rec := startProxy(t, r)
	attack := `{"q":"1' union all select password,2 from users--","pad":"` + strings.Repeat("b", 100<<10) + `"}`
	resp, _ := post(t, base+"/orders", "application/json", strings.NewReader(attack))
	if resp.StatusCode != http.StatusForbidden || len(a.requests()) != 0 {
		t.Fatalf("SQL injection in the inspected prefix of an oversized body: status %d", resp.StatusCode)
	}
	if got := rec.all(); len(got) != 1 || !strings.Contains(got[0].Message, "SQL injection") || !strings.Contains(got[0].Message, "not inspected beyond 65536 bytes") {
		t.Fatalf("audits %+v", got)
	}
}

// TestBodyMemoryBudget: large bodies in flight share a bounded memory
// budget; one beyond it gets 503 with Retry-After while small bodies pass,
// and the budget comes back when the request is done.
func TestBodyMemoryBudget(t *testing.T) {
	arrived, proceed := make(chan struct{}, 4), make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/hold" {
			arrived <- struct{}{}
			<-proceed
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(app.Close)
	port := app.Listener.Addr().(*net.TCPAddr).Port
	p, base, _ := startProxy(t, rule(uint16(port), allProtections(policy.EffectPrevent)), WithBodyMemory(1<<20))

	large := largeJSONNotes(t, 400<<10, 1000) // reserves ~800 KiB of the 1 MiB budget
	held := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/hold", "application/json", bytes.NewReader(large))
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	select {
	case <-arrived:
	case st := <-held:
		t.Fatalf("the request to hold ended with status %d before reaching the app", st)
	}
	for _, chunked := range []bool{false, true} {
		var rd io.Reader = bytes.NewReader(large)
		if chunked {
			rd = io.MultiReader(rd)
		}
		resp, _ := post(t, base+"/other", "application/json", rd)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("large body beyond the budget (chunked %v): status %d, want 503 with Retry-After", chunked, resp.StatusCode)
		}
	}
	if resp, _ := post(t, base+"/small", "application/json", strings.NewReader(`{"q":"small"}`)); resp.StatusCode != http.StatusOK {
		t.Errorf("small body while the budget is used: status %d", resp.StatusCode)
	}
	close(proceed)
	if st := <-held; st != http.StatusOK {
		t.Fatalf("held request: status %d", st)
	}
	if resp, _ := post(t, base+"/other", "application/json", bytes.NewReader(large)); resp.StatusCode != http.StatusOK {
		t.Errorf("large body after the budget came back: status %d", resp.StatusCode)
	}
	if got := p.Stats().Busy; got != 2 {
		t.Errorf("Stats.Busy = %d, want 2", got)
	}
}

// TestArgumentsLimit: arguments beyond the inspected number are not
// dropped silently: the rule's oversizeEffect decides, as for bytes.
func TestArgumentsLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range argumentsLimit + 50 {
		fmt.Fprintf(&b, `"k%d":"v%d",`, i, i)
	}
	b.WriteString(`"q":"1' union all select password,2 from users--"}`)
	body := b.String()
	a := newApp(t)
	r := rule(a.port(t), allProtections(policy.EffectPrevent))
	_, base, rec := startProxy(t, r)
	resp, _ := post(t, base+"/orders", "application/json", strings.NewReader(body))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || len(a.requests()) != 0 {
		t.Fatalf("SQL injection after %d arguments: status %d, want 413", argumentsLimit+50, resp.StatusCode)
	}
	want := fmt.Sprintf("oversized body blocked POST /orders from 127.0.0.1: more than %d arguments, the inspection limit", argumentsLimit)
	if got := rec.all(); len(got) != 1 || !strings.HasPrefix(got[0].Message, want) {
		t.Fatalf("audits %+v, want %q", got, want)
	}
	r.OversizeEffect = policy.EffectAlert
	_, base, rec = startProxy(t, r)
	resp, _ = post(t, base+"/orders", "application/json", strings.NewReader(body))
	want = fmt.Sprintf("oversized body detected POST /orders from 127.0.0.1: arguments not inspected beyond %d", argumentsLimit)
	if got := rec.all(); resp.StatusCode != http.StatusOK || len(got) != 1 || !strings.HasPrefix(got[0].Message, want) {
		t.Fatalf("alert: status %d, audits %+v, want 200 and %q", resp.StatusCode, got, want)
	}
}
