package report

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jstemmer/go-junit-report/v2/junit"
)

// Suite names of the JUnit report, one per check family.
const (
	SuiteVulnerabilities = "taskguard.vulnerabilities"
	SuiteImageCompliance = "taskguard.image-compliance"
	SuiteTaskCompliance  = "taskguard.task-compliance"
)

// WriteJUnit writes r as JUnit XML: one suite per check family, one test case
// per finding. What the gate blocks is a failure; an alert passes with the
// reason in system-out; a finding accepted by an exception is skipped,
// with the acceptance's reason and expiry.
func WriteJUnit(_ context.Context, w io.Writer, r *Report) error {
	suites := junit.Testsuites{Name: "taskguard"}
	props := r.junitProperties()

	vs := newSuite(SuiteVulnerabilities, r.CreatedAt, props)
	for _, v := range r.Vulnerabilities {
		name := fmt.Sprintf("%s %s@%s", v.VulnerabilityID, v.PkgName, v.InstalledVersion)
		detail := fmt.Sprintf("%s %s in %s %s (fixed in %s) at %s\n%s\n%s",
			v.Severity, v.VulnerabilityID, v.PkgType, v.PkgName, dash(v.FixedVersion), v.Location.Path, v.Title, v.PrimaryURL)
		vs.AddTestcase(testcase(r.classname(), name, v.Severity, v.Verdict, detail))
	}
	suites.AddSuite(withPlaceholder(vs, "no vulnerabilities found", r.classname()))

	is := newSuite(SuiteImageCompliance, r.CreatedAt, props)
	ts := newSuite(SuiteTaskCompliance, r.CreatedAt, props)
	for _, c := range r.Compliance {
		name := fmt.Sprintf("%s %s (%s)", c.CheckID, c.Title, c.Target)
		detail := fmt.Sprintf("%s: %s\nRemediation: %s", c.Severity, c.Message, c.Remediation)
		if c.Family == "task" {
			class := "task"
			if r.Task != nil {
				class = "task." + strings.ReplaceAll(r.Task.Family, ".", "_")
			}
			ts.AddTestcase(testcase(class, name, c.Severity, c.Verdict, detail))
		} else {
			is.AddTestcase(testcase(r.classname(), name, c.Severity, c.Verdict, detail))
		}
	}
	suites.AddSuite(withPlaceholder(is, "no image compliance issues", r.classname()))
	if r.Task != nil {
		suites.AddSuite(withPlaceholder(ts, "no task compliance issues", "task."+strings.ReplaceAll(r.Task.Family, ".", "_")))
	}
	for i := range suites.Suites {
		suites.Suites[i].ID = i
	}
	if _, err := io.WriteString(w, xmlHeader); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	if err := suites.WriteXML(w); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	return nil
}

const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

func newSuite(name string, ts time.Time, props []junit.Property) junit.Testsuite {
	s := junit.Testsuite{Name: name, Time: "0"}
	if !ts.IsZero() {
		s.SetTimestamp(ts)
	}
	for _, p := range props {
		s.AddProperty(p.Name, p.Value)
	}
	return s
}

// withPlaceholder gives an empty suite one passing case, so that CI systems
// that refuse reports without tests still show the family as checked.
func withPlaceholder(s junit.Testsuite, name, class string) junit.Testsuite {
	if len(s.Testcases) == 0 {
		s.AddTestcase(junit.Testcase{Name: name, Classname: class, Time: "0"})
	}
	return s
}

func testcase(class, name string, severity string, v Verdict, detail string) junit.Testcase {
	tc := junit.Testcase{Name: name, Classname: class, Time: "0"}
	switch {
	case v.Action == ActionBlock:
		tc.Failure = &junit.Result{Message: "blocked: " + v.Reason, Type: severity, Data: detail}
	case v.Action == ActionAlert:
		tc.SystemOut = &junit.Output{Data: "ALERT (" + v.Reason + ")\n" + detail}
	case v.accepted():
		tc.Skipped = &junit.Result{Message: "accepted: " + v.Accepted.Justification()}
	case strings.HasPrefix(v.Reason, "exception"):
		tc.Skipped = &junit.Result{Message: v.Reason}
	default:
		tc.SystemOut = &junit.Output{Data: "ignored (" + v.Reason + ")\n" + detail}
	}
	return tc
}

// classname is "image.<name>" with the name's dots made underscores: Jenkins
// splits a classname at its last dot into package and class.
func (r *Report) classname() string {
	if r.Image != nil && r.Image.Name != "" {
		return "image." + strings.ReplaceAll(r.Image.Name, ".", "_")
	}
	return "image"
}

func (r *Report) junitProperties() []junit.Property {
	props := []junit.Property{{Name: "taskguard.result", Value: r.Result}, {Name: "taskguard.policy", Value: r.Policy.Source + " " + r.Policy.Location},
		{Name: "taskguard.blocked", Value: strconv.Itoa(r.Summary.Blocked)},
		{Name: "taskguard.alerted", Value: strconv.Itoa(r.Summary.Alerted)},
		{Name: "taskguard.accepted", Value: strconv.Itoa(r.Summary.Accepted)}}
	if r.Image != nil {
		props = append(props, junit.Property{Name: "image.name", Value: r.Image.Name})
		if r.Image.Digest != "" {
			props = append(props, junit.Property{Name: "image.digest", Value: r.Image.Digest})
		}
	}
	if r.DB != nil && !r.DB.UpdatedAt.IsZero() {
		props = append(props,
			junit.Property{Name: "db.updatedAt", Value: r.DB.UpdatedAt.UTC().Format(time.RFC3339)},
			junit.Property{Name: "db.ageHours", Value: fmt.Sprintf("%.0f", r.CreatedAt.Sub(r.DB.UpdatedAt).Hours())})
	}
	return props
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
