package waf

import (
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/taskguard/taskguard/console/policy"
)

// Extended detection: CRS rules run a second time, as copies with their
// own IDs, where the rule set at paranoia level 1 is weak — on the URL path
// and on request headers CRS leaves out (X-Forwarded-For and its kin), or
// rules of higher paranoia levels that add no false positive on the benign
// corpus (testdata/benign). The copies are chosen by measurement
// (detection_test.go: TestDetectionReport, TestDetectionBenign); each one
// is the CRS rule as written (operator, transformations, chain, message,
// severity) with only its ID and, when targets is set, its variables
// changed.

// extraIDBase is added to a CRS rule's ID to give its copy's ID: the copy
// of 942100 is 9942100. ProtectionOf maps a copy to its rule's protection.
const extraIDBase = 9_000_000

// extraRule is one CRS rule run again.
type extraRule struct {
	id int
	// targets are the copy's SecRule variables; empty keeps the rule's own
	// (a rule above the configured paranoia level enabled as it is).
	targets string
}

// pathAndHeaders are the request parts CRS PL1 leaves out that the
// extended rules add: the URL path and headers a client sets freely that
// applications log, parse or forward.
const (
	targetPath    = "REQUEST_FILENAME"
	targetHeaders = "REQUEST_HEADERS:X-Forwarded-For|REQUEST_HEADERS:X-Real-IP|REQUEST_HEADERS:X-Forwarded-Host|REQUEST_HEADERS:True-Client-IP|REQUEST_HEADERS:X-Client-IP|REQUEST_HEADERS:Forwarded"
	targetAgents  = "REQUEST_HEADERS:User-Agent|REQUEST_HEADERS:Referer"
)

// extendedRules are the copies of the "extended" detection (the default),
// chosen by TestDetectionCandidates: every PL1 rule of the attack families
// tried on the path, the forwarding headers and User-Agent/Referer (those
// its own targets lack), every PL2-PL3 rule as it is; kept when it brings
// at least 3 attack requests of the sample that CRS PL1 lets through to the
// blocking threshold and matches no benign request at all (testdata/benign,
// the CRS regression suite's benign tests, libinjection's false
// positives). The comment names the target groups kept.
var extendedRules = []extraRule{
	{930120, targetAgents + "|" + targetHeaders}, // agents+headers
	{id: 930121},            // above PL1, as it is
	{930130, targetHeaders}, // headers
	{930140, targetAgents + "|" + targetHeaders},                    // agents+headers
	{931100, targetAgents + "|" + targetHeaders},                    // agents+headers
	{931120, targetAgents},                                          // agents
	{id: 931131},                                                    // above PL1, as it is
	{932120, targetAgents},                                          // agents
	{932130, targetAgents + "|" + targetHeaders + "|" + targetPath}, // agents+headers+path
	{id: 932131},                                                    // above PL1, as it is
	{932140, targetAgents + "|" + targetHeaders + "|" + targetPath}, // agents+headers+path
	{932160, targetAgents + "|" + targetHeaders + "|" + targetPath}, // agents+headers+path
	{id: 932161},            // above PL1, as it is
	{932180, targetHeaders}, // headers
	{932235, targetHeaders + "|" + targetPath},                      // headers+path
	{932250, targetAgents + "|" + targetHeaders + "|" + targetPath}, // agents+headers+path
	{932260, targetAgents + "|" + targetHeaders + "|" + targetPath}, // agents+headers+path
	{id: 932300},         // above PL1, as it is
	{id: 932301},         // above PL1, as it is
	{id: 932320},         // above PL1, as it is
	{932340, targetPath}, // path
	{933100, targetAgents + "|" + targetHeaders + "|" + targetPath}, // agents+headers+path
	{933110, targetAgents},                       // agents
	{933130, targetAgents + "|" + targetHeaders}, // agents+headers
	{933135, targetAgents + "|" + targetHeaders}, // agents+headers
	{933160, targetAgents + "|" + targetHeaders}, // agents+headers
	{933180, targetAgents},                       // agents
	{933210, targetAgents + "|" + targetHeaders}, // agents+headers
	{934100, targetHeaders},                      // headers
	{id: 934101},                                 // above PL1, as it is
	{id: 934120},                                 // above PL1, as it is
	{id: 934140},                                 // above PL1, as it is
	{934190, targetAgents},                       // agents
	{941100, targetHeaders},                      // headers
	{941160, targetHeaders},                      // headers
	{941170, targetHeaders},                      // headers
	{941210, targetHeaders},                      // headers
	{941390, targetHeaders},                      // headers
	{942100, targetHeaders},                      // headers
	{id: 942101},                                 // above PL1, as it is
	{942140, targetHeaders + "|" + targetPath},   // headers+path
	{942151, targetHeaders},                      // headers
	{942190, targetHeaders},                      // headers
	{942270, targetHeaders},                      // headers
	{942360, targetHeaders},                      // headers
	{id: 944210},                                 // above PL1, as it is
	{id: 944300},                                 // above PL1, as it is
}

// extrasFor returns the copies a rule's detection setting asks for.
func extrasFor(d policy.WAFDetection) []extraRule {
	if d == policy.WAFDetectionCRS {
		return nil
	}
	return extendedRules
}

// crsRules indexes the embedded CRS request rules by ID: each entry is the
// rule's logical lines, its chain included.
var crsRules = sync.OnceValues(func() (map[int][]string, error) {
	files, err := fs.Glob(crsFS, "@owasp_crs/REQUEST-9*.conf")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("read embedded core rule set: no request rule files (%v)", err)
	}
	out := map[int][]string{}
	for _, f := range files {
		b, err := fs.ReadFile(crsFS, f)
		if err != nil {
			return nil, fmt.Errorf("read embedded core rule set: %w", err)
		}
		var cur []string
		curID := 0
		for _, l := range logicalLines(string(b)) {
			l = strings.TrimLeft(l, " \t")
			if !strings.HasPrefix(l, "SecRule ") && !strings.HasPrefix(l, "SecAction ") {
				continue
			}
			if cur == nil {
				m := ruleID.FindStringSubmatch(l)
				if m == nil {
					continue
				}
				curID, _ = strconv.Atoi(m[1])
			}
			cur = append(cur, l)
			if !chainAction.MatchString(l) {
				out[curID] = cur
				cur = nil
			}
		}
	}
	return out, nil
})

var (
	ruleID      = regexp.MustCompile(`[",]id:(\d+)[,"]`)
	chainAction = regexp.MustCompile(`[",]\s*chain\s*[,"]`)
)

// mustAtoi parses a rule ID known to be digits.
func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

var plTag = regexp.MustCompile(`tag:'paranoia-level/(\d)'`)

// copyRule returns the SecLang of the copy of CRS rule x, or "" when x
// keeps its targets and its paranoia level is at most pl (it runs already).
func copyRule(x extraRule, pl int) (string, error) {
	rules, err := crsRules()
	if err != nil {
		return "", err
	}
	lines, ok := rules[x.id]
	if !ok {
		return "", fmt.Errorf("extended detection: no CRS rule %d", x.id)
	}
	head := lines[0]
	if m := plTag.FindStringSubmatch(head); x.targets == "" && (m == nil || mustAtoi(m[1]) <= pl) {
		return "", nil
	}
	if x.targets != "" {
		rest, ok := strings.CutPrefix(head, "SecRule ")
		_, ops, found := strings.Cut(rest, " ")
		if !ok || !found {
			return "", fmt.Errorf("extended detection: rule %d is not a SecRule", x.id)
		}
		head = "SecRule " + x.targets + " " + ops
	}
	old := fmt.Sprintf("id:%d", x.id)
	if strings.Count(head, old) != 1 {
		return "", fmt.Errorf("extended detection: rule %d: id not found once", x.id)
	}
	head = strings.Replace(head, old, fmt.Sprintf("id:%d", extraIDBase+x.id), 1)
	// Data files are named relative to the rule file; the copy is inline.
	text := strings.Join(append([]string{head}, lines[1:]...), "\n") + "\n"
	return strings.ReplaceAll(text, `"@pmFromFile `, `"@pmFromFile @owasp_crs/`), nil
}
