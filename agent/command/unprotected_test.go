package command_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/api"
)

// TestUnprotectedStartIsReported: a protected container whose sidecar never
// comes. Fail-open (the default) runs the app, and both a log line and a
// defender audit (a JSON line on the container's stderr, since there is no
// sidecar to take it) say it runs unprotected and why. Fail-closed
// (TASKGUARD_FAIL_CLOSED=1) does not run it and exits non-zero saying why.
func TestUnprotectedStartIsReported(t *testing.T) {
	dir := t.TempDir()
	bin := defenderBinary(t, dir)
	run := func(extra ...string) (stdout, stderr string, code int) {
		cmd := exec.Command(bin, "entrypoint", "--", "/bin/sh", "-c", "echo app-ran")
		cmd.Env = append([]string{"PATH=/bin:/usr/bin", "TASKGUARD_SOCKET=" + filepath.Join(dir, "none.sock"),
			"TASKGUARD_TASK=shop", "TASKGUARD_CONTAINER=web", "TASKGUARD_POLICY_WAIT=300ms"}, extra...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}

	stdout, stderr, code := run()
	if code != 0 || stdout != "app-ran\n" {
		t.Fatalf("fail-open: exit %d, stdout %q; want the app to run", code, stdout)
	}
	if !strings.Contains(stderr, "runtime protection is off: the app starts unprotected") || !strings.Contains(stderr, "no sidecar") {
		t.Errorf("fail-open: no log line that says the app starts unprotected and why:\n%s", stderr)
	}
	var found *api.Audit
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var a api.Audit
		if json.Unmarshal(sc.Bytes(), &a) == nil && a.Kind == api.AuditDefender {
			found = &a
		}
	}
	if found == nil || found.Container != "web" || found.TaskFamily != "shop" || found.Severity != "high" ||
		!strings.HasPrefix(found.Message, "Runtime protection is off for container web: no sidecar") ||
		!strings.HasSuffix(found.Message, "the app started unprotected (fail-open)") {
		t.Errorf("fail-open: defender audit %+v; want one for container web saying it started unprotected because there is no sidecar\n%s", found, stderr)
	}

	stdout, stderr, code = run("TASKGUARD_FAIL_CLOSED=1")
	if code == 0 || strings.Contains(stdout, "app-ran") {
		t.Fatalf("fail-closed: exit %d, stdout %q; want no app and a non-zero exit", code, stdout)
	}
	if !strings.Contains(stderr, "runtime protection could not start (fail-closed)") || !strings.Contains(stderr, "no sidecar socket") {
		t.Errorf("fail-closed: stderr %q does not say why the app did not start", stderr)
	}
}
