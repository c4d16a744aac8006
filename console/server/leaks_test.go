package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to count rows
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store/postgres"
	"github.com/taskguard/taskguard/console/store/postgres/pgtest"
	"github.com/taskguard/taskguard/console/store/sqlite"
	"github.com/taskguard/taskguard/console/store/sqlstore"
)

// metricSeries counts the series of a metric family in a /metrics body.
func metricSeries(body, name string) int {
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+"{") {
			n++
		}
	}
	return n
}

// The method of a request is the client's: any token, before
// authentication. 5,000 requests with distinct made-up methods (each of
// them 1 KiB, under the header limit) must not leave 5,000 series of
// taskguard_console_http_requests_total in the process: they are counted
// under method="other". Without the fix the request counter grew by a series
// (and its 1 KiB label) per method, for the life of the process.
func TestMetricsMethodsBounded(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	const requests = 5000
	pad := strings.Repeat("X", 1024)
	for i := range requests {
		method := fmt.Sprintf("M%05d%s", i, pad)
		if r := e.do(method, api.PathMetrics, "", ""); r.status != 405 {
			t.Fatalf("request %d with method %.16s…: %d, want 405", i, method, r.status)
		}
	}
	r := e.do("GET", api.PathMetrics, basic(auth.RoleAuditor), "")
	if r.status != 200 {
		t.Fatalf("metrics: %d", r.status)
	}
	// The metrics request itself and the made-up methods: a handful of series.
	if n := metricSeries(r.body, "taskguard_console_http_requests_total"); n > 10 {
		t.Errorf("%d series of taskguard_console_http_requests_total after %d requests with distinct methods, want at most 10", n, requests)
	}
	if want := fmt.Sprintf(`taskguard_console_http_requests_total{code="405",method="other",route="not-found"} %d`, requests); !strings.Contains(r.body, want) {
		t.Errorf("metrics lack %s", want)
	}
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		if got := methodLabel(m); got != m {
			t.Errorf("methodLabel(%q) = %q, want it kept", m, got)
		}
	}
}

// Every task family a defender fetches policy for was remembered for the
// life of the process: an entry in the families seen and a
// taskguard_console_defender_last_seen_timestamp_seconds series each, and
// protect mints a credential for whatever family a task definition names.
// With the bound lowered to 100, 1,000 families (each with its own agent
// credential, over HTTPS) leave at most 100 remembered, and a family whose
// defender keeps fetching stays among them.
func TestFamiliesSeenBounded(t *testing.T) {
	defer func(n int) { maxFamiliesSeen = n }(maxFamiliesSeen)
	maxFamiliesSeen = 100
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	steady := e.agentClient("steady")
	const families = 1000
	for i := range families {
		if _, _, _, err := e.agentClient(fmt.Sprintf("fam-%04d", i)).AgentPolicy(ctx, "", 0); err != nil {
			t.Fatalf("family %d: %v", i, err)
		}
		if _, _, _, err := steady.AgentPolicy(ctx, "", 0); err != nil {
			t.Fatal(err)
		}
	}
	r := e.do("GET", api.PathMetrics, basic(auth.RoleAuditor), "")
	if r.status != 200 {
		t.Fatalf("metrics: %d", r.status)
	}
	series := metricSeries(r.body, "taskguard_console_defender_last_seen_timestamp_seconds")
	if series > 100 {
		t.Errorf("%d series of taskguard_console_defender_last_seen_timestamp_seconds after %d families, want at most 100", series, families)
	}
	var gauge int
	for _, line := range strings.Split(r.body, "\n") {
		if v, ok := strings.CutPrefix(line, "taskguard_console_defender_task_families "); ok {
			gauge, _ = strconv.Atoi(v)
		}
	}
	if gauge != series {
		t.Errorf("taskguard_console_defender_task_families %d, want the %d series", gauge, series)
	}
	for _, f := range []string{"steady", fmt.Sprintf("fam-%04d", families-1)} {
		if want := `taskguard_console_defender_last_seen_timestamp_seconds{task_family="` + f + `"}`; !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %s (seen last)", want)
		}
	}
	if strings.Contains(r.body, `task_family="fam-0000"`) {
		t.Error(`the first family, seen once 999 families ago, is still in the metrics`)
	}
	// The overview lists the families remembered (no audits were posted).
	page := e.do("GET", "/", basic(auth.RoleAuditor), "")
	if page.status != 200 {
		t.Fatalf("overview: %d", page.status)
	}
	if n := strings.Count(page.body, "<li>fam-"); n == 0 || n > 100 {
		t.Errorf("the overview lists %d families fam-… after %d, want 1 to 100", n, families)
	}
	if !strings.Contains(page.body, "<li>steady</li>") {
		t.Error("the overview does not list the family seen last")
	}
}

// A defender whose policy has not changed only ever gets 304 from its
// long-poll. It is seen all the same: with the bound lowered to 100 and
// 1,000 other families fetching policy, a family whose defender only
// long-polls (If-None-Match with the current ETag, held until its wait
// ends, 304) stays in the families seen. Before, a 304 did not count as a
// sighting, so such a family was never listed at all.
func TestLongPollingFamilySeen(t *testing.T) {
	defer func(n int) { maxFamiliesSeen = n }(maxFamiliesSeen)
	maxFamiliesSeen = 100
	e := newTestEnv(t, auth.ThrottleConfig{})
	ctx := context.Background()
	// The ETag a defender kept from before (an admin's fetch is no defender's).
	r := e.do("GET", api.PathAgentPolicy, basic(auth.RoleAdmin), "")
	etag := r.header.Get("ETag")
	if r.status != 200 || etag == "" {
		t.Fatalf("admin policy fetch: %d ETag %q", r.status, etag)
	}
	quiet := e.agentClient("quiet")
	const families = 1000
	for i := range families {
		if _, _, _, err := e.agentClient(fmt.Sprintf("fam-%04d", i)).AgentPolicy(ctx, "", 0); err != nil {
			t.Fatalf("family %d: %v", i, err)
		}
		if i%10 != 0 {
			continue
		}
		// Held until its wait ends, then 304.
		_, _, modified, err := quiet.AgentPolicy(ctx, etag, time.Millisecond)
		if err != nil || modified {
			t.Fatalf("long-poll %d: modified %v, %v; want 304", i, modified, err)
		}
	}
	r = e.do("GET", api.PathMetrics, basic(auth.RoleAuditor), "")
	if r.status != 200 {
		t.Fatalf("metrics: %d", r.status)
	}
	if want := `taskguard_console_defender_last_seen_timestamp_seconds{task_family="quiet"}`; !strings.Contains(r.body, want) {
		t.Errorf("metrics lack %s: a defender answered only 304 is not seen", want)
	}
	page := e.do("GET", "/", basic(auth.RoleAuditor), "")
	if page.status != 200 {
		t.Fatalf("overview: %d", page.status)
	}
	if !strings.Contains(page.body, "<li>quiet</li>") {
		t.Error("the overview does not list the family whose defender only long-polls")
	}
	// A 304 without a wait counts too.
	if _, _, modified, err := e.agentClient("quieter").AgentPolicy(ctx, etag, 0); err != nil || modified {
		t.Fatalf("conditional fetch: modified %v, %v; want 304", modified, err)
	}
	r = e.do("GET", api.PathMetrics, basic(auth.RoleAuditor), "")
	if !strings.Contains(r.body, `task_family="quieter"`) {
		t.Error("a defender answered 304 at once is not seen")
	}
}

// logLine returns the request log line of the request with id.
func (e *testEnv) logLine(id string) string {
	e.t.Helper()
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"request"`) && strings.Contains(line, `"id":"`+id+`"`) {
			return line
		}
	}
	e.t.Fatalf("no request log line with id %s", id)
	return ""
}

// The method and path of a request are the client's, up to the 64 KiB
// header limit, before authentication, and the request log line kept them
// whole: a 60 KiB made-up method made a 60 KiB line. Now a method HTTP does
// not define is logged by its first 16 bytes and its length, a path past
// 512 bytes by those and its length.
//
// The 404 and 405 answers repeated the method and path whole (a 60 KiB
// method or path came back in the body): they are cut as in the log, the
// path to 128 bytes, and stay under 1 KiB even when every byte of the path
// is one JSON escapes.
func TestRequestLogBounded(t *testing.T) {
	e := newTestEnv(t, auth.ThrottleConfig{})
	long := strings.Repeat("M", 60<<10)
	tests := []struct {
		name, method, path string
		status             int
		want               string // in the line
		answer             string // in the answer's error
	}{
		{"60 KiB method", "X" + long, api.PathPing, 405, `"method":"XMMMMMMMMMMMMMMM…(61441 bytes)"`,
			`XMMMMMMMMMMMMMMM…(61441 bytes) is not allowed on ` + api.PathPing + `; use GET`},
		{"60 KiB path", "GET", "/" + strings.Repeat("p", 60<<10), 404, `…(61441 bytes)"`,
			"no such endpoint: /" + strings.Repeat("p", 127) + "…(61441 bytes)"},
		{"60 KiB method and path", "X" + long, api.PathScans + "/" + strings.Repeat("i", 60<<10), 405, `"method":"XMMMMMMMMMMMMMMM…(61441 bytes)"`,
			"XMMMMMMMMMMMMMMM…(61441 bytes) is not allowed on " + api.PathScans + "/i"},
		{"60 KiB path JSON escapes", "GET", "/" + strings.Repeat("<", 60<<10), 404, `…(61441 bytes)"`,
			"no such endpoint: /" + strings.Repeat("<", 127) + "…(61441 bytes)"},
		{"known method, short path", "GET", api.PathPing, 200, `"method":"GET","path":"` + api.PathPing + `"`, ""},
		{"short made-up method", "BREW", api.PathPing, 405, `"method":"BREW"`, "BREW is not allowed on " + api.PathPing + "; use GET"},
		{"short unknown path", "GET", "/nowhere", 404, `"path":"/nowhere"`, "no such endpoint: /nowhere"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, "", "")
			if r.status != tt.status {
				t.Fatalf("%d, want %d", r.status, tt.status)
			}
			line := e.logLine(r.header.Get("X-Request-ID"))
			if len(line) > 1024 {
				t.Errorf("log line of %d bytes, want at most 1 KiB: %.200s…", len(line), line)
			}
			if !strings.Contains(line, tt.want) {
				t.Errorf("log line %.300s lacks %s", line, tt.want)
			}
			if tt.answer == "" {
				return
			}
			if len(r.body) >= 1024 {
				t.Errorf("answer of %d bytes, want under 1 KiB: %.200s…", len(r.body), r.body)
			}
			var answer api.Error
			if err := json.Unmarshal([]byte(r.body), &answer); err != nil {
				t.Fatalf("answer %.200q: %v", r.body, err)
			}
			if !strings.Contains(answer.Error, tt.answer) {
				t.Errorf("answer %.300q lacks %q", answer.Error, tt.answer)
			}
		})
	}
}

// A request refused by a lockout records nothing new. An address locked
// out for trying too many users kept adding two login_failures rows (the
// user's count and the user-from-address count) for every new user name it
// tried, and a user locked out for guesses from too many addresses a row
// (the user-from-address count) for every new address; only the purge, ten
// minutes on, bounded them, so by the attack's rate. Over HTTPS, on SQLite
// and PostgreSQL: after the lockout, 2,000 more attempts, each with a new
// user name (or 500, each from a new loopback address), are all refused
// with 429 and add no row (4,000 or 500 before).
func TestLockedOutAttemptsAddNoRows(t *testing.T) {
	const lockout = 20
	tests := []struct {
		name     string
		throttle auth.ThrottleConfig
		attempts int
		// from is the address and user of attempt i (i < 0: those locking out).
		from func(i int) (ip, user string)
	}{
		{"one address, many users", auth.ThrottleConfig{AddressLockout: lockout}, 2000,
			func(i int) (string, string) { return "127.0.0.1", fmt.Sprintf("nobody-%d", i+lockout+1) }},
		{"one user, many addresses", auth.ThrottleConfig{UserLockout: lockout}, 500,
			func(i int) (string, string) {
				n := i + lockout + 1
				return fmt.Sprintf("127.0.%d.%d", 1+n/250, 1+n%250), "alice"
			}},
	}
	check := func(t *testing.T, e *testEnv, rows func() int, attempts int, from func(int) (string, string)) {
		g := &guesser{e: e}
		defer g.close()
		guess := func(t *testing.T, _ *testEnv, ip, user string) response { t.Helper(); return g.guess(ip, user) }
		// The first lockout attempts are counted; the one past the limit
		// is refused.
		for i := -lockout - 1; i < 0; i++ {
			ip, user := from(i)
			if r := guess(t, e, ip, user); (r.status == http.StatusTooManyRequests) != (i == -1) {
				t.Fatalf("lockout attempt %d: %d", lockout+2+i, r.status)
			}
		}
		locked := rows()
		if locked > 2*(lockout+1)+1 { // a pair, a user and an address each
			t.Fatalf("%d rows after the lockout, want at most %d", locked, 2*(lockout+1)+1)
		}
		for i := range attempts {
			ip, user := from(i)
			if r := guess(t, e, ip, user); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "600" {
				t.Fatalf("attempt %d: %d Retry-After %q, want 429 after 600s", i, r.status, r.header.Get("Retry-After"))
			}
		}
		after := rows()
		t.Logf("login_failures rows: %d after the lockout, %d after %d more attempts", locked, after, attempts)
		if after > locked {
			t.Errorf("%d attempts refused by the lockout added %d rows", attempts, after-locked)
		}
		// The lockout is the same: it ends a window after it began.
		e.advance(10 * time.Minute)
		ip, user := from(attempts)
		if r := guess(t, e, ip, user); r.status != http.StatusUnauthorized {
			t.Errorf("after the window: %d, want 401", r.status)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Run("sqlite", func(t *testing.T) {
				e := newTestEnv(t, tt.throttle)
				check(t, e, countRows(t, "sqlite", e.dbPath, "login_failures"), tt.attempts, tt.from)
			})
			t.Run("postgres", func(t *testing.T) {
				url := pgtest.Start(t).NewDatabase(t)
				st, err := postgres.Open(context.Background(), url, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				check(t, newTestEnvOn(t, st, tt.throttle, nil), countRows(t, "pgx", url, "login_failures"), tt.attempts, tt.from)
			})
		})
	}
}

// guesser sends wrong passwords from loopback addresses over HTTPS, with one
// client per address in turn.
type guesser struct {
	e  *testEnv
	ip string
	c  *http.Client
}

// guess sends a wrong password for user from address ip.
func (g *guesser) guess(ip, user string) response {
	g.e.t.Helper()
	if g.c == nil || g.ip != ip {
		g.close()
		g.ip, g.c = ip, clientFrom(g.e, ip)
	}
	return g.e.doWith(g.c, "GET", api.PathPolicies, "basic "+user+" wrong-password", "")
}

func (g *guesser) close() {
	if g.c != nil {
		g.c.CloseIdleConnections()
		g.c = nil
	}
}

// loopback is the n-th of a range of loopback addresses (n < 62,500).
func loopback(n int) string { return fmt.Sprintf("127.%d.%d.%d", 1+n/62500, 1+n/250%250, 1+n%250) }

// The login_failures table grew by up to three rows per attempt from a new
// address with a new user name, at the attacker's rate, until the purge a
// window on. It is bounded now (a bound of 60 here), and flooding it does
// not unlock what is locked out: over HTTPS on SQLite and PostgreSQL, a
// user is locked out by guesses from 6 addresses, then 300 attempts, each
// from a new address for a new user, are answered 401 (900 rows before);
// the table never holds more than 60 rows, the user stays locked out from
// a new address and from an old one, and the lockout ends a window after
// it began.
func TestLoginFailureRowsBounded(t *testing.T) {
	const bound, userLockout, flood = 60, 5, 300
	check := func(t *testing.T, e *testEnv, rows func() int) {
		g := &guesser{e: e}
		defer g.close()
		for i := range userLockout + 1 {
			if r := g.guess(loopback(i), "alice"); (r.status == http.StatusTooManyRequests) != (i == userLockout) {
				t.Fatalf("guess %d for alice: %d", i+1, r.status)
			}
			e.advance(time.Second)
		}
		most := 0
		for i := range flood {
			e.advance(time.Millisecond)
			if r := g.guess(loopback(1000+i), fmt.Sprintf("nobody-%d", i)); r.status != http.StatusUnauthorized {
				t.Fatalf("flood attempt %d: %d, want 401", i, r.status)
			}
			if i%10 == 9 {
				most = max(most, rows())
			}
		}
		t.Logf("login_failures rows: at most %d during %d attempts from new addresses for new users", most, flood)
		if most > bound {
			t.Errorf("%d rows, want at most %d", most, bound)
		}
		for _, ip := range []string{loopback(flood + 2000), loopback(0)} {
			if r := g.guess(ip, "alice"); r.status != http.StatusTooManyRequests {
				t.Errorf("alice from %s after the flood: %d, want 429 (still locked out)", ip, r.status)
			}
		}
		e.advance(10 * time.Minute)
		if r := g.guess(loopback(flood+2001), "alice"); r.status != http.StatusUnauthorized {
			t.Errorf("alice after the window: %d, want 401", r.status)
		}
	}
	throttle := auth.ThrottleConfig{UserLockout: userLockout}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "taskguard.db")
		st, err := sqlite.Open(context.Background(), path, sqlstore.WithLoginFailureRows(bound))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		check(t, newTestEnvOn(t, st, throttle, nil), countRows(t, "sqlite", path, "login_failures"))
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.Start(t).NewDatabase(t)
		st, err := postgres.Open(context.Background(), url, nil, sqlstore.WithLoginFailureRows(bound))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		check(t, newTestEnvOn(t, st, throttle, nil), countRows(t, "pgx", url, "login_failures"))
	})
}

// countRows returns a function counting the rows of table over its own
// connection to the database at dsn (driver "sqlite" or "pgx").
func countRows(t *testing.T, driver, dsn, table string) func() int {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return func() int {
		t.Helper()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		return n
	}
}

// maxSQLiteConns is the most connections the test below lets a SQLite store
// open (sqlstore bounds it lower).
const maxSQLiteConns = 16

// dbFDs counts this process's descriptors open on the files of the SQLite
// database at path (the database, its -wal and -shm).
func dbFDs(path string) int {
	ents, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, ent := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + ent.Name()); err == nil && strings.HasPrefix(target, path) {
			n++
		}
	}
	return n
}

// A SQLite store had no bound on its connections: 500 requests at once
// opened up to 500 (each with the database file and its log open, and
// schema and cache of its own), every writer among them waiting in SQLite's
// busy handler. Over HTTPS (connections opened beforehand, so the burst
// makes no TLS handshake), 250 audit batches posted and 250 audit pages
// read at once: every request answers, every record is stored, no
// SQLITE_BUSY is logged, and the store never holds more than its bound of
// connections (sampled from db.Stats and /proc/self/fd while the requests
// run).
func TestSQLiteConnectionsBounded(t *testing.T) {
	const requests, perBatch = 500, 10
	e := newTestEnv(t, auth.ThrottleConfig{})
	db := e.store.(interface{ Stats() sql.DBStats })
	agent := "Bearer " + agentToken(t, e, "burst")
	auditor := "Bearer " + e.login(userOf(auth.RoleAuditor), passwords[auth.RoleAuditor]).Token

	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = requests, requests
	client := &http.Client{Transport: tr}
	t.Cleanup(client.CloseIdleConnections)
	// Open the connections, 16 handshakes at a time, each held until all are open.
	var warm sync.WaitGroup
	handshakes := make(chan struct{}, 16)
	open := make(chan *http.Response, requests)
	for range requests {
		warm.Go(func() {
			handshakes <- struct{}{}
			req, _ := http.NewRequest("GET", e.url+api.PathPing, nil)
			resp, err := client.Do(req)
			<-handshakes
			if err != nil {
				t.Errorf("warm-up: %v", err)
				return
			}
			open <- resp
		})
	}
	warm.Wait()
	close(open)
	for resp := range open {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if t.Failed() {
		t.FailNow()
	}

	start, done := make(chan struct{}), make(chan struct{})
	type peaks struct{ conns, fds int }
	sampled := make(chan peaks)
	go func() {
		var p peaks
		for {
			select {
			case <-done:
				sampled <- p
				return
			default:
			}
			p.conns = max(p.conns, db.Stats().OpenConnections)
			p.fds = max(p.fds, dbFDs(e.dbPath))
			runtime.Gosched()
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored, failures := 0, []string{}
	for i := range requests {
		wg.Go(func() {
			var req *http.Request
			if i%2 == 0 {
				audits := make([]api.Audit, perBatch)
				for j := range audits {
					audits[j] = auditFor(fmt.Sprintf("b%03d-%d", i, j), api.AuditDNS, policy.EffectAlert, "DNS resolution of suspicious name yahoo.com")
				}
				body, _ := json.Marshal(api.AuditBatch{Audits: audits})
				req, _ = http.NewRequest("POST", e.url+api.PathAgentAudits, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", agent)
			} else {
				req, _ = http.NewRequest("GET", e.url+api.PathRuntimeAudits+"?limit=50", nil)
				req.Header.Set("Authorization", auditor)
			}
			<-start
			resp, err := client.Do(req)
			var fail string
			var res api.AuditIngestResponse
			switch {
			case err != nil:
				fail = err.Error()
			case i%2 == 0 && resp.StatusCode != http.StatusAccepted, i%2 == 1 && resp.StatusCode != http.StatusOK:
				b, _ := io.ReadAll(resp.Body)
				fail = fmt.Sprintf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
			case i%2 == 0:
				if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || res.Stored != perBatch {
					fail = fmt.Sprintf("batch %d: %+v, %v; want %d stored", i, res, err, perBatch)
				}
			}
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			stored += res.Stored
			if fail != "" {
				failures = append(failures, fail)
			}
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	close(done)
	p := <-sampled
	stats := db.Stats()
	t.Logf("%d requests at once: at most %d connections open (bound %d), %d descriptors on the database files; %d waited for a connection",
		requests, p.conns, stats.MaxOpenConnections, p.fds, stats.WaitCount)
	for i, f := range failures {
		if i == 5 {
			t.Errorf("… %d failures in all", len(failures))
			break
		}
		t.Errorf("request failed: %s", f)
	}
	if want := requests / 2 * perBatch; stored != want {
		t.Errorf("%d audits stored, want %d", stored, want)
	}
	if logs := e.logs.String(); strings.Contains(logs, "SQLITE_BUSY") || strings.Contains(logs, "database is locked") {
		t.Error("the log shows SQLITE_BUSY")
	}
	if stats.MaxOpenConnections < 1 || stats.MaxOpenConnections > maxSQLiteConns {
		t.Errorf("the SQLite store's connections are bounded at %d (0: none), want 1 to %d", stats.MaxOpenConnections, maxSQLiteConns)
	}
	if p.conns > maxSQLiteConns {
		t.Errorf("%d connections open at once, want at most %d", p.conns, maxSQLiteConns)
	}
	if p.fds > 3*maxSQLiteConns {
		t.Errorf("%d descriptors open on the database files at once, want at most %d", p.fds, 3*maxSQLiteConns)
	}
}
