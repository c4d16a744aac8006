// Package consoletest starts a real console (package console: HTTPS on
// loopback, SQLite in a temporary directory) for the tests of other parts,
// such as the defender's sidecar, so that they talk to the console they will
// meet in production instead of an imitation of it. It is imported only by
// tests.
package consoletest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/taskguard/taskguard/console"
	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/policy"
	"github.com/taskguard/taskguard/console/store"
	"github.com/taskguard/taskguard/console/store/sqlite"
)

// AdminPassword is the password of the user "admin" of every test console.
const AdminPassword = "consoletest-admin-password"

// Console is a running console.
type Console struct {
	// URL is the console's https:// address; DataDir holds its database
	// (DBPath) and certificate.
	URL     string
	DataDir string
	// HTTP is a client that trusts the console's certificate.
	HTTP *http.Client

	t    testing.TB
	c    *console.Console
	addr string
	pem  string
}

// Start starts a console for t and stops it when t ends.
func Start(t testing.TB) *Console {
	t.Helper()
	c := &Console{t: t, DataDir: t.TempDir(), addr: "127.0.0.1:0"}
	c.start()
	t.Cleanup(c.Stop)
	return c
}

func (c *Console) start() {
	c.t.Helper()
	cc, err := console.Start(context.Background(), console.Config{
		DataDir: c.DataDir, Listen: c.addr, AdminUser: "admin", AdminPassword: AdminPassword,
		Auth: auth.Config{BcryptCost: bcrypt.MinCost},
	})
	if err != nil {
		c.t.Fatalf("start the console: %v", err)
	}
	c.c, c.URL, c.addr = cc, cc.URL(), cc.Addr().String()
	c.pem = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cc.Certificate().Raw}))
	pool := x509.NewCertPool()
	pool.AddCert(cc.Certificate())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	c.HTTP = &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// Stop shuts the console down (a no-op when it is stopped).
func (c *Console) Stop() {
	if c.c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.c.Shutdown(ctx); err != nil {
		c.t.Errorf("console shutdown: %v", err)
	}
	c.c = nil
}

// Restart starts the stopped console again, on the same address and data.
func (c *Console) Restart() {
	c.t.Helper()
	c.Stop()
	c.start()
}

// DBPath is the console's SQLite file.
func (c *Console) DBPath() string { return filepath.Join(c.DataDir, "taskguard.db") }

// Admin returns a client with the admin's password.
func (c *Console) Admin() *api.Client {
	return c.client(api.WithBasicAuth("admin", AdminPassword))
}

// Agent returns a client with the agent credential of family.
func (c *Console) Agent(family string) *api.Client {
	return c.client(api.WithToken(c.AgentToken(family)))
}

func (c *Console) client(opts ...api.Option) *api.Client {
	c.t.Helper()
	cl, err := api.NewClient(c.URL, append([]api.Option{api.WithHTTPClient(c.HTTP)}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// AgentToken returns the credential a protected task of family carries, the
// way a user gets it: by protecting a task definition.
func (c *Console) AgentToken(family string) string {
	c.t.Helper()
	task := fmt.Sprintf(`{"family":%q,"containerDefinitions":[{"name":"app","image":"app:1","entryPoint":["/app"]}]}`, family)
	out, err := c.Admin().ProtectFargate(context.Background(), []byte(task), api.ProtectOptions{ConsoleAddr: c.addr})
	if err != nil {
		c.t.Fatalf("protect a task of %s: %v", family, err)
	}
	var td struct {
		ContainerDefinitions []struct {
			Environment []struct{ Name, Value string }     `json:"environment"`
			Secrets     []struct{ Name, ValueFrom string } `json:"secrets"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(out, &td); err != nil {
		c.t.Fatal(err)
	}
	for _, cd := range td.ContainerDefinitions {
		for _, e := range cd.Environment {
			if e.Name == "TASKGUARD_AGENT_TOKEN" {
				return e.Value
			}
		}
	}
	c.t.Fatalf("the protected task carries no TASKGUARD_AGENT_TOKEN:\n%s", out)
	return ""
}

// Audits returns every stored audit (runtime and firewall lists, all pages).
func (c *Console) Audits() []api.Audit {
	c.t.Helper()
	ctx := context.Background()
	admin := c.Admin()
	var all []api.Audit
	for _, list := range []func(context.Context, api.AuditQuery) (api.AuditPage, error){admin.RuntimeAudits, admin.FirewallAudits} {
		q := api.AuditQuery{Limit: 5000}
		for {
			p, err := list(ctx, q)
			if err != nil {
				c.t.Fatalf("read audits: %v", err)
			}
			all = append(all, p.Audits...)
			if p.Next == "" {
				break
			}
			q.Cursor = p.Next
		}
	}
	slices.SortFunc(all, func(a, b api.Audit) int { return a.Time.Compare(b.Time) })
	return all
}

// WaitAudits polls the stored audits until cond holds for them, failing t
// after d.
func (c *Console) WaitAudits(d time.Duration, cond func([]api.Audit) bool) []api.Audit {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		a := c.Audits()
		if cond(a) {
			return a
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("after %v the console holds %d audits, not what the test waits for", d, len(a))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TaskImages lists the inventories the console holds (GET PathTaskImages).
func (c *Console) TaskImages() []api.TaskImage {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.URL+api.PathTaskImages, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.SetBasicAuth("admin", AdminPassword)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.t.Fatalf("list task images: %v", err)
	}
	defer resp.Body.Close()
	var l api.TaskImageList
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&l) != nil {
		c.t.Fatalf("list task images: %s", resp.Status)
	}
	return l.Images
}

// Addr is the console's host:port; it stays the same across Restart.
func (c *Console) Addr() string { return c.addr }

// CAPEM is the PEM text of the console's certificate: what protect writes
// into TASKGUARD_CONSOLE_CA_PEM for a defender to trust the console.
func (c *Console) CAPEM() string { return c.pem }

// SetPolicy makes p's runtime, WAF and image rules the console's (through
// the admin API, each list replaced as a whole; the console numbers the
// revision, p.Revision is ignored). It returns the new revision.
func (c *Console) SetPolicy(p *policy.Policy) int64 {
	c.t.Helper()
	ctx := context.Background()
	admin := c.Admin()
	if _, err := admin.SetRuntimeRules(ctx, nonNil(p.Runtime), 0); err != nil {
		c.t.Fatalf("set runtime rules: %v", err)
	}
	if _, err := admin.SetWAFRules(ctx, nonNil(p.WAF), 0); err != nil {
		c.t.Fatalf("set WAF rules: %v", err)
	}
	rev, err := admin.SetImageRules(ctx, nonNil(p.Images), 0)
	if err != nil {
		c.t.Fatalf("set image rules: %v", err)
	}
	return rev
}

// nonNil keeps an empty list an empty JSON array, not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Inventories returns the full inventories the console stores for the task
// family (every one when family is ""), oldest first. The API returns only
// summaries of them, so they are read from the console's database (a second
// connection to its SQLite file, as another console process would open it).
func (c *Console) Inventories(family string) []api.Inventory {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sqlite.Open(ctx, c.DBPath())
	if err != nil {
		c.t.Fatalf("open the console's store: %v", err)
	}
	defer db.Close()
	stored, err := db.Inventories(ctx, store.InventoryQuery{})
	if err != nil {
		c.t.Fatalf("read the console's inventories: %v", err)
	}
	slices.SortFunc(stored, func(a, b store.StoredInventory) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
	var out []api.Inventory
	for _, s := range stored {
		if family == "" || s.Inventory.TaskFamily == family {
			out = append(out, s.Inventory)
		}
	}
	return out
}

// WaitInventories polls the family's stored inventories until cond holds for
// them, failing t after d.
func (c *Console) WaitInventories(d time.Duration, family string, cond func([]api.Inventory) bool) []api.Inventory {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		inv := c.Inventories(family)
		if cond(inv) {
			return inv
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("after %v the console holds %d inventories of %q, not what the test waits for", d, len(inv), family)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
