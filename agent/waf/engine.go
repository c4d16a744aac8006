package waf

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"

	"github.com/taskguard/taskguard/agent/waf/internal/bodyproc"
	"github.com/taskguard/taskguard/agent/waf/internal/gate"
	"github.com/taskguard/taskguard/console/policy"
)

// anomalyThreshold is CRS's default inbound anomaly score threshold: one
// critical match (5) is enough, notices alone (2 each) are not.
const anomalyThreshold = 5

// rawBodyArg is the argument name under which a body that failed to parse is
// inspected a second time, as one opaque value.
const rawBodyArg = "raw_body"

// engine is one compiled WAF rule: the Coraza WAF with only the enabled
// families loaded, and the rule's effects and exceptions.
type engine struct {
	rule      policy.WAFRule
	waf       coraza.WAF
	enabled   map[policy.Protection]bool
	bodyLimit int
	// oversize is the effect on a body larger than bodyLimit.
	oversize policy.Effect
	// checks are the rule's protections besides CRS (sources, rate limit,
	// API, bots).
	checks checks
	// upstream forwards clean requests to the app; set by Proxy.SetRule.
	upstream http.Handler
	// gate is the gate's program (nil without the gate).
	gate *gate.Program
	// txBase is TX as the gate finds it in a transaction (direct.go); nil
	// without the gate.
	txBase *txBase
}

// directives returns the Coraza configuration for the enabled protections at
// paranoia level pl. Only the request phases are configured: responses are not
// inspected, no audit log is written.
// extras are CRS rules run again on other targets or above pl (extras.go).
func directives(enabled map[policy.Protection]bool, pl, bodyLimit int, gated bool, extras []extraRule) (string, error) {
	// The setup's constant TX values, set by one action (crs.go): the
	// version crs-setup would set (900990), the paranoia level, REQUEST-901's
	// defaults and its score counters (901200). The rules that set them
	// one setvar at a time are removed.
	setup, err := constantSetvars("@crs-setup.conf.example", "900990")
	if err != nil {
		return "", err
	}
	setup = append(setup, fmt.Sprintf("tx.blocking_paranoia_level=%d", pl))
	defaults, removedIDs, err := setupDefaults("blocking_paranoia_level", "crs_setup_version")
	if err != nil {
		return "", err
	}
	for _, d := range defaults {
		setup = append(setup, strings.ReplaceAll(d, "%{TX.blocking_paranoia_level}", fmt.Sprint(pl)))
	}
	counters, err := constantSetvars("@owasp_crs/REQUEST-901-INITIALIZATION.conf", "901200")
	if err != nil {
		return "", err
	}
	setup = append(setup, counters...)
	setupArg, err := setupArgument(setup)
	if err != nil {
		return "", err
	}
	removedIDs = append(removedIDs, "901200")
	// REQUEST-901's checks that the setup above makes unable to match,
	// evaluated on every request otherwise: 901001 (no crs_setup_version),
	// 901120 (no blocking paranoia level), 901500 (detection below
	// blocking), 901320 (default collections, not enabled), 901350 (forced
	// urlencoded body processing, off), 901400-901450 (sampling, at 100%).
	if err := setupHolds(setup, map[string]string{
		"tx.crs_setup_version": "", "tx.blocking_paranoia_level": fmt.Sprint(pl), "tx.detection_paranoia_level": fmt.Sprint(pl),
		"tx.sampling_percentage": "100", "tx.enforce_bodyproc_urlencoded": "0",
	}); err != nil {
		return "", err
	}
	removedIDs = append(removedIDs, "901001", "901120", "901320", "901350", "901400", "901410", "901450", "901500")
	var b strings.Builder
	b.WriteString("Include @coraza.conf-recommended\n")
	// DetectionOnly: the proxy decides per protection from the matched rules.
	fmt.Fprintf(&b, `SecRuleEngine DetectionOnly
SecResponseBodyAccess Off
SecAuditEngine Off
SecRequestBodyLimit %d
SecRequestBodyInMemoryLimit %d
SecRequestBodyLimitAction ProcessPartial
SecArgumentsLimit %d
Include @crs-setup.conf.example
SecRuleRemoveById 900990
%sSecAction "id:900991,phase:1,pass,t:none,nolog,tgsetup:%s"
Include @owasp_crs/REQUEST-901-INITIALIZATION.conf
SecRuleRemoveById %s
Include @owasp_crs/REQUEST-905-COMMON-EXCEPTIONS.conf
`, bodyLimit, bodyLimit, argumentsLimit, "# tgsetup: "+strings.Join(setup, "\n# tgsetup: ")+"\n", setupArg, strings.Join(removedIDs, " "))
	if gated {
		fmt.Fprintf(&b, "SecRule REQUEST_METHOD \"@%s %s 1\" \"id:%d,phase:1,pass,nolog,t:none,skipAfter:%s\"\n", gateOperator, gateKeyPlaceholder, gateIDs[0], gateEnd)
		fmt.Fprintf(&b, "SecRule REQUEST_METHOD \"@%s %s 2\" \"id:%d,phase:2,pass,nolog,t:none,skipAfter:%s\"\n", gateOperator, gateKeyPlaceholder, gateIDs[1], gateEnd)
	}
	var files []string
	for _, f := range Families {
		if enabled[f.Protection] {
			files = append(files, f.Files...)
		}
	}
	slices.Sort(files) // CRS order is the file-name order
	files = slices.Compact(files)
	for i, f := range files {
		if !gated {
			fmt.Fprintf(&b, "Include @owasp_crs/%s\n", f)
			continue
		}
		// When the gate cannot skip every family, it may still let
		// Coraza skip this file alone (gate.Options.FileFlags).
		flag, marker := fileFlag(f), fmt.Sprintf("TASKGUARD-END-%s", f[len("REQUEST-"):len("REQUEST-")+3])
		for phase := 1; phase <= 2; phase++ {
			fmt.Fprintf(&b, "SecRule TX:%s_p%d \"@eq 1\" \"id:%d,phase:%d,pass,nolog,t:none,skipAfter:%s\"\n",
				flag, phase, fileSkipID+10*i+phase, phase, marker)
		}
		fmt.Fprintf(&b, "Include @owasp_crs/%s\nSecMarker %s\n", f, marker)
	}
	// CRS's own false-positive exclusions (well-known cookies, JSON keys):
	// load-time target updates, no cost per request. Only those of loaded
	// files apply, and before rules are removed by paranoia level below.
	loaded := map[string]bool{}
	for _, f := range files {
		loaded[f[len("REQUEST-"):len("REQUEST-")+3]] = true
	}
	exceptions, err := commonExceptions()
	if err != nil {
		return "", fmt.Errorf("read embedded core rule set: %w", err)
	}
	var copies strings.Builder
	copied := map[string]bool{}
	for _, x := range extras {
		if !enabled[ProtectionOf(x.id)] {
			continue
		}
		text, err := copyRule(x, pl)
		if err != nil {
			return "", err
		}
		copies.WriteString(text)
		if text != "" && x.targets == "" {
			copied[fmt.Sprint(x.id)] = true
		}
	}
	for _, line := range strings.Split(exceptions, "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 3 && fields[0] == "SecRuleUpdateTargetById" && len(fields[1]) == 6 && loaded[fields[1][:3]] {
			b.WriteString(line + "\n")
			if copied[fields[1]] {
				// A copy with the rule's own targets keeps its exclusions.
				fmt.Fprintf(&copies, "SecRuleUpdateTargetById %d %s\n", extraIDBase+mustAtoi(fields[1]), strings.Join(fields[2:], " "))
			}
		}
	}
	// Rules above the paranoia level never run: CRS skips them on every
	// request with markers (NNN013-NNN018 skip levels 2-4). Remove both at
	// load time so that requests do not pay for the markers.
	if pl < 4 {
		for k := pl + 1; k <= 4; k++ {
			fmt.Fprintf(&b, "SecRuleRemoveByTag paranoia-level/%d\n", k)
		}
		for _, f := range files {
			family := f[len("REQUEST-") : len("REQUEST-")+3]
			fmt.Fprintf(&b, "SecRuleRemoveById %s%03d-%s018\n", family, 2*pl+11, family)
		}
		// The one untagged rule behind a marker: 921170 counts parameters
		// for the level-3 rule 921180.
		if pl < 3 && enabled[policy.ProtectionProtocol] {
			b.WriteString("SecRuleRemoveById 921170\n")
		}
	}
	switch {
	case enabled[policy.ProtectionCmdi] && !enabled[policy.ProtectionShellshock]:
		b.WriteString("SecRuleRemoveById 932170 932171\n")
	case !enabled[policy.ProtectionCmdi] && enabled[policy.ProtectionShellshock]:
		b.WriteString("SecRuleRemoveById 932100-932169 932172-932999\n")
	}
	// The extended detection's copies come after the removals: they carry
	// tags and IDs of their own.
	b.WriteString(copies.String())
	if gated {
		fmt.Fprintf(&b, "SecMarker %s\n", gateEnd)
	}
	// Past the gate: arguments beyond SecArgumentsLimit are dropped by
	// Coraza, not inspected; the proxy treats that like a body over the
	// limit (the rule's oversizeEffect decides).
	fmt.Fprintf(&b, "SecRule ARGUMENTS_LIMIT_REACHED \"@eq 1\" \"id:%d,phase:2,pass,nolog,t:none\"\n", argsLimitID)
	return b.String(), nil
}

// argsLimitID is the rule that reports arguments dropped by Coraza.
const argsLimitID = 9002001

// argumentsLimit is Coraza's SecArgumentsLimit here: how many arguments
// (query, form, JSON leaves, multipart fields) are inspected. Coraza's own
// default of 1000 would cut a 200 KB JSON document; inspection costs time
// per argument and rule, so the bound stays finite: more arguments are
// decided by the rule's oversizeEffect.
const argumentsLimit = 10_000

// newEngine validates rule and compiles its WAF, with the gate.
func newEngine(rule policy.WAFRule, pl, bodyLimit int) (*engine, error) {
	return compileEngine(rule, pl, bodyLimit, true)
}

// compileEngine compiles rule's WAF; gated puts the gate (gate.go) in front
// of the rule families.
func compileEngine(rule policy.WAFRule, pl, bodyLimit int, gated bool) (*engine, error) {
	return compileWith(rule, pl, bodyLimit, gated, extrasFor(rule.Detection))
}

// compileWith compiles rule's WAF with the given extended-detection copies.
func compileWith(rule policy.WAFRule, pl, bodyLimit int, gated bool, extras []extraRule) (*engine, error) {
	if err := (&policy.Policy{WAF: []policy.WAFRule{rule}}).Validate(); err != nil {
		return nil, fmt.Errorf("waf rule %q: %w", rule.Name, err)
	}
	if pl < 1 || pl > 4 {
		return nil, fmt.Errorf("waf rule %q: paranoia level %d is not between 1 and 4", rule.Name, pl)
	}
	enabled := map[policy.Protection]bool{}
	for p, eff := range rule.Protections {
		if eff == policy.EffectAlert || eff == policy.EffectPrevent {
			enabled[p] = true
		}
	}
	d, err := directives(enabled, pl, bodyLimit, gated, extras)
	if err != nil {
		return nil, fmt.Errorf("waf rule %q: %w", rule.Name, err)
	}
	var prog *gate.Program
	if gated {
		if d, prog, err = registerGate(d); err != nil {
			return nil, fmt.Errorf("waf rule %q: %w", rule.Name, err)
		}
	}
	w, err := coraza.NewWAF(coraza.NewWAFConfig().
		WithRootFS(crsFS).
		WithDirectives(d))
	if err != nil {
		return nil, fmt.Errorf("waf rule %q: load core rule set: %w", rule.Name, err)
	}
	oversize := rule.OversizeEffect
	if oversize == "" {
		oversize = policy.EffectDisable
		for _, eff := range rule.Protections {
			if eff == policy.EffectPrevent || eff == policy.EffectAlert && oversize != policy.EffectPrevent {
				oversize = eff
			}
		}
	}
	c, err := newChecks(rule, time.Now)
	if err != nil {
		return nil, fmt.Errorf("waf rule %q: %w", rule.Name, err)
	}
	eng := &engine{rule: rule, waf: w, enabled: enabled, bodyLimit: bodyLimit, oversize: oversize, checks: c, gate: prog}
	if prog != nil {
		eng.txBase = directTXBase(d)
	}
	return eng, nil
}

// match is one CRS rule that matched a request and was not excepted.
type match struct {
	id         int
	protection policy.Protection
	severity   types.RuleSeverity
	msg        string
	data       []types.MatchData
}

// verdict is what inspection decided for one request.
type verdict struct {
	// effect is EffectDisable when the request passes without audit.
	effect      policy.Effect
	matches     []match
	protections []string
	score       int
	// argsCut is set when Coraza dropped arguments beyond argumentsLimit.
	argsCut bool
	// note is said in the audit message after the protections (why).
	note string
	// severity overrides the matches' severity when there are none.
	severity string
	// gated counts the request phases whose rule families the gate skipped;
	// filesSkipped the rule files Coraza skipped alone when it could not.
	gated, filesSkipped int
	// direct is set when the gate proved the request clean without a Coraza
	// transaction (direct.go).
	direct bool
}

// ruleIDs returns the matched rule IDs in order.
func (v verdict) ruleIDs() []int {
	ids := make([]int, 0, len(v.matches))
	for _, m := range v.matches {
		ids = append(ids, m.id)
	}
	return ids
}

// score returns the CRS anomaly score of a severity.
func score(id int, s types.RuleSeverity) int {
	switch s {
	case types.RuleSeverityEmergency, types.RuleSeverityAlert, types.RuleSeverityCritical:
		return 5
	case types.RuleSeverityError:
		return 4
	case types.RuleSeverityWarning:
		return 3
	case types.RuleSeverityNotice:
		return 2
	case types.RuleSeverityUnset:
		if id >= 200000 && id < 201000 { // Coraza's own deny rules carry no severity
			return 5
		}
	}
	return 0
}

// inspect runs the request phases on r. body holds the request body, or
// its first bodyLimit bytes when truncated; r.Body is not read. A truncated
// body that fails to parse is not a protocol violation (it was cut here):
// its prefix is inspected as one opaque value instead.
func (e *engine) inspect(r *http.Request, body []byte, truncated bool) verdict {
	if !truncated && e.cleanDirect(r, body) {
		return verdict{effect: policy.EffectDisable, gated: 2, direct: true}
	}
	tx := e.waf.NewTransaction()
	defer tx.Close()
	defer e.openGate(tx)()
	fillRequest(tx, r)
	tx.ProcessRequestHeaders()
	if len(body) > 0 && tx.IsRequestBodyAccessible() {
		// The limit is enforced by the caller; ProcessPartial keeps Coraza quiet.
		_, _, _ = tx.WriteRequestBody(body)
	}
	_, _ = tx.ProcessRequestBody()
	mrs := tx.MatchedRules()
	matches, parseErr := e.collect(mrs, r.URL.Path, nil)
	if truncated {
		matches = slices.DeleteFunc(matches, func(m match) bool { return m.id == 200002 || m.id == 200003 })
	}
	if parseErr && len(body) > 0 {
		matches = e.inspectRaw(r, body, matches)
	}
	v := e.decide(matches)
	for _, mr := range mrs {
		switch id := mr.Rule().ID(); {
		case id == gateIDs[0] || id == gateIDs[1]:
			v.gated++
		case id > fileSkipID && id < fileSkipID+1000:
			v.filesSkipped++
		case id == argsLimitID:
			v.argsCut = true
		}
	}
	return v
}

// inspectRaw inspects a body that claimed a structured type but failed to
// parse (rule 200002) as one opaque argument, so that an attack inside it is
// reported as what it is and not only as a parse error.
func (e *engine) inspectRaw(r *http.Request, body []byte, matches []match) []match {
	tx := e.waf.NewTransaction()
	defer tx.Close()
	defer e.openGate(tx)()
	fillRequest(tx, r)
	tx.AddRequestHeader("Content-Type", "application/x-www-form-urlencoded")
	tx.ProcessRequestHeaders()
	tx.AddPostRequestArgument(rawBodyArg, string(body))
	_, _ = tx.ProcessRequestBody()
	more, _ := e.collect(tx.MatchedRules(), r.URL.Path, nil)
	for _, m := range more {
		if m.protection == policy.ProtectionProtocol || slices.ContainsFunc(matches, func(o match) bool { return o.id == m.id }) {
			continue
		}
		matches = append(matches, m)
	}
	return matches
}

// fillRequest feeds connection, request line and headers to tx, the way
// Coraza's own net/http middleware does.
func fillRequest(tx types.Transaction, r *http.Request) {
	client, cport := r.RemoteAddr, 0
	if i := strings.LastIndexByte(r.RemoteAddr, ':'); i != -1 {
		client = strings.Trim(r.RemoteAddr[:i], "[]")
		cport, _ = strconv.Atoi(r.RemoteAddr[i+1:])
	}
	tx.ProcessConnection(client, cport, "", 0)
	tx.ProcessURI(r.URL.RequestURI(), r.Method, r.Proto)
	for k, vs := range r.Header {
		for i, v := range vs {
			key := k
			if i > 0 {
				// A key string of its own per value: Coraza's
				// transformation cache tells values apart by their key's
				// address and index (internal/bodyproc/urlencoded.go).
				key = strings.Clone(k)
			}
			tx.AddRequestHeader(key, v)
		}
	}
	if r.Host != "" {
		tx.AddRequestHeader("Host", r.Host)
		tx.SetServerName(r.Host)
	}
	for _, te := range r.TransferEncoding {
		tx.AddRequestHeader("Transfer-Encoding", te)
	}
	separateCookieKeys(tx, r.Header.Values("Cookie"))
}

// separateCookieKeys re-adds the cookies of a repeated name (in any case)
// each under a key string of its own. Coraza's cookie parser adds every
// value of a name under one key string, and its transformation cache tells
// values apart by their key's address and index: with rules seeing
// REQUEST_COOKIES in different map orders, one value could be given
// another's cached transformation ("a=hello; a=<script>…" passed 3 times
// in 300; TestNoBypassByRepeatedCookies). The values stay the same.
func separateCookieKeys(tx types.Transaction, headers []string) {
	if len(headers) == 0 || len(headers) == 1 && !strings.Contains(headers[0], ";") {
		return // at most one cookie: no name repeats
	}
	seen, repeated := map[string]bool{}, false
	for _, h := range headers {
		bodyproc.EachCookie(h, func(name, _ string) {
			l := strings.ToLower(name)
			repeated = repeated || seen[l]
			seen[l] = true
		})
	}
	ts, ok := tx.(plugintypes.TransactionState)
	if !repeated || !ok {
		return
	}
	col := ts.Variables().RequestCookies()
	for l := range seen {
		col.Remove(l)
	}
	for _, h := range headers {
		bodyproc.EachCookie(h, func(name, val string) { col.Add(strings.Clone(name), val) })
	}
}

// collect keeps the matches of enabled families that no exception covers.
// It reports whether the body failed to parse.
func (e *engine) collect(mrs []types.MatchedRule, urlPath string, dst []match) ([]match, bool) {
	parseErr := false
	for _, mr := range mrs {
		id := mr.Rule().ID()
		if id == 200002 {
			parseErr = true
		}
		p := ProtectionOf(id)
		if p == "" || !e.enabled[p] || mr.Message() == "" {
			continue
		}
		data, ok := e.except(p, urlPath, mr.MatchedDatas())
		if !ok {
			continue
		}
		dst = append(dst, match{id: id, protection: p, severity: mr.Rule().Severity(), msg: mr.Message(), data: data})
	}
	return dst, parseErr
}

// except applies the rule's exceptions to one match of protection p. It
// returns the matched data left and false when the whole match is excepted.
func (e *engine) except(p policy.Protection, urlPath string, data []types.MatchData) ([]types.MatchData, bool) {
	for _, ex := range e.rule.Exceptions {
		if ex.Path != "" {
			if ok, _ := path.Match(ex.Path, urlPath); !ok {
				continue
			}
		}
		if len(ex.Protections) > 0 && !slices.Contains(ex.Protections, p) {
			continue
		}
		if ex.Parameter == "" {
			return nil, false
		}
		kept := data[:0:0]
		for _, d := range data {
			if !isArg(d.Variable()) || d.Key() != ex.Parameter {
				kept = append(kept, d)
			}
		}
		if len(kept) == 0 {
			return nil, false
		}
		data = kept
	}
	return data, true
}

// isArg reports whether v names request parameters (query or body).
func isArg(v variables.RuleVariable) bool {
	switch v {
	case variables.Args, variables.ArgsGet, variables.ArgsPost, variables.ArgsNames,
		variables.ArgsGetNames, variables.ArgsPostNames, variables.ArgsPath:
		return true
	}
	return false
}

// decide scores the matches as CRS would and picks the strongest effect of
// the protections involved.
func (e *engine) decide(matches []match) verdict {
	v := verdict{effect: policy.EffectDisable, matches: matches}
	for _, m := range matches {
		v.score += score(m.id, m.severity)
		if !slices.Contains(v.protections, string(m.protection)) {
			v.protections = append(v.protections, string(m.protection))
		}
	}
	if v.score < anomalyThreshold {
		return v
	}
	for _, p := range v.protections {
		switch e.rule.Protections[policy.Protection(p)] {
		case policy.EffectPrevent:
			v.effect = policy.EffectPrevent
		case policy.EffectAlert:
			if v.effect != policy.EffectPrevent {
				v.effect = policy.EffectAlert
			}
		}
	}
	return v
}
