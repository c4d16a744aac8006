package gate

import (
	"errors"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// The gate reads the same configuration text as Coraza: a directive it
// splits differently (a rule lost in a continuation, an operator cut at an
// escaped quote, a target key split at a '|') compiles a different rule,
// and the gate would prove the wrong rule clean.

func TestReadDirectives(t *testing.T) {
	root := fstest.MapFS{
		"rules/a.conf":   {Data: []byte("SecRule ARGS \"@rx a\" \"id:1\"\n# comment\nSecMarker A-END\n")},
		"rules/b.conf":   {Data: []byte("Include rules/c.conf\n")},
		"rules/c.conf":   {Data: []byte("SecAction \"id:3,pass\"\n")},
		"loop/self.conf": {Data: []byte("Include loop/self.conf\n")},
	}
	tests := []struct {
		name    string
		text    string
		want    []directive
		wantErr error // errors.Is; nil with errText for other errors
		errText string
	}{
		{
			name: "one per line, names lower case",
			text: "SecRuleEngine On\nSECMARKER END\n",
			want: []directive{{"secruleengine", "On", "config"}, {"secmarker", "END", "config"}},
		},
		{
			name: "continuations joined, indentation trimmed",
			text: "SecRule ARGS \"@rx x\" \\\n    \"id:1,\\\n    phase:2,\\\n    pass\"\n",
			want: []directive{{"secrule", `ARGS "@rx x" "id:1,phase:2,pass"`, "config"}},
		},
		{
			name: "comments and blank lines dropped",
			text: "# SecRule ARGS \"@rx x\" \"id:1\"\n\n   \n  # indented comment\nSecMarker X\n",
			want: []directive{{"secmarker", "X", "config"}},
		},
		{
			name: "CRLF line ends",
			text: "SecMarker X\r\nSecRule ARGS \"@rx y\" \\\r\n  \"id:2\"\r\n",
			want: []directive{{"secmarker", "X", "config"}, {"secrule", `ARGS "@rx y" "id:2"`, "config"}},
		},
		{
			name: "quoted single argument unquoted",
			text: "SecMarker \"END-OF-GATE\"\n",
			want: []directive{{"secmarker", "END-OF-GATE", "config"}},
		},
		{
			name: "include with the file name of each directive",
			text: "Include rules/a.conf\nSecMarker B\n",
			want: []directive{
				{"secrule", `ARGS "@rx a" "id:1"`, "rules/a.conf"},
				{"secmarker", "A-END", "rules/a.conf"},
				{"secmarker", "B", "config"},
			},
		},
		{
			name: "nested include, quoted arguments unquoted",
			text: "Include rules/b.conf\n",
			want: []directive{{"secaction", "id:3,pass", "rules/c.conf"}},
		},
		{
			name: "include glob in name order",
			text: "Include rules/[ac].conf\n",
			want: []directive{
				{"secrule", `ARGS "@rx a" "id:1"`, "rules/a.conf"},
				{"secmarker", "A-END", "rules/a.conf"},
				{"secaction", "id:3,pass", "rules/c.conf"},
			},
		},
		{name: "missing include", text: "Include rules/missing.conf\n", wantErr: fs.ErrNotExist},
		{name: "bad include pattern", text: "Include rules/[.conf\n", errText: "include"},
		{name: "include loop", text: "Include loop/self.conf\n", errText: "nested too deep"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readDirectives(root, tc.text, "config", 0)
			if tc.wantErr != nil || tc.errText != "" {
				if err == nil {
					t.Fatalf("no error, got %v", got)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("error %v, want it to mention %q", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParseSecRule(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		vars    string
		op      string
		actions []action
		wantErr bool
	}{
		{
			name: "plain", args: `ARGS|REQUEST_HEADERS "@rx ^a b$" "id:1,phase:2,pass"`,
			vars: "ARGS|REQUEST_HEADERS", op: "@rx ^a b$",
			actions: []action{{"id", "1"}, {"phase", "2"}, {"pass", ""}},
		},
		{
			name: "escaped quote in operator", args: `ARGS "@rx [\"']x" "id:2"`,
			vars: "ARGS", op: `@rx ["']x`, actions: []action{{"id", "2"}},
		},
		{
			name: "escaped backslash before the closing quote", args: `ARGS "@rx a\\" "id:3"`,
			vars: "ARGS", op: `@rx a\\`, actions: []action{{"id", "3"}},
		},
		{
			name: "escaped backslash then escaped quote", args: `ARGS "@rx a\\\"b" "id:4"`,
			vars: "ARGS", op: `@rx a\\"b`, actions: []action{{"id", "4"}},
		},
		{
			name: "no actions", args: `REQUEST_URI "@contains x"`,
			vars: "REQUEST_URI", op: "@contains x",
		},
		{
			name: "negated operator", args: `TX:X "!@within %{tx.allowed}" "t:lowercase"`,
			vars: "TX:X", op: "!@within %{tx.allowed}", actions: []action{{"t", "lowercase"}},
		},
		{
			name: "extra spaces", args: `  ARGS   "@rx a"   "id:5"  `,
			vars: "ARGS", op: "@rx a", actions: []action{{"id", "5"}},
		},
		{name: "only variables", args: `ARGS`, wantErr: true},
		{name: "unquoted operator", args: `ARGS @rx "id:1"`, wantErr: true},
		{name: "unterminated operator", args: `ARGS "@rx a\" "id:1`, wantErr: true},
		{name: "unquoted actions", args: `ARGS "@rx a" id:1`, wantErr: true},
		{name: "unterminated actions", args: `ARGS "@rx a" "id:1`, wantErr: true},
		{name: "unterminated action quote", args: `ARGS "@rx a" "id:1,msg:'x"`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vars, op, actions, err := parseSecRule(tc.args)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error: %q %q %q", vars, op, actions)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if vars != tc.vars || op != tc.op || !reflect.DeepEqual(actions, tc.actions) {
				t.Fatalf("got %q %q %q\nwant %q %q %q", vars, op, actions, tc.vars, tc.op, tc.actions)
			}
		})
	}
}

func TestParseActions(t *testing.T) {
	tests := []struct {
		name    string
		s       string
		want    []action
		wantErr bool
	}{
		{name: "empty", s: ""},
		{name: "names lower case", s: "ID:1,Pass,NoLog", want: []action{{"id", "1"}, {"pass", ""}, {"nolog", ""}}},
		{
			name: "quoted value with commas",
			s:    "msg:'a, b, c',logdata:'x,y'",
			want: []action{{"msg", "a, b, c"}, {"logdata", "x,y"}},
		},
		{
			name: "value with colons",
			s:    "setvar:'tx.a=%{tx.b}',ctl:ruleRemoveTargetById=942100;ARGS:foo",
			want: []action{{"setvar", "tx.a=%{tx.b}"}, {"ctl", "ruleRemoveTargetById=942100;ARGS:foo"}},
		},
		{
			name: "t:none and chains",
			s:    "t:none,t:urlDecodeUni,t:lowercase",
			want: []action{{"t", "none"}, {"t", "urlDecodeUni"}, {"t", "lowercase"}},
		},
		{
			name: "escaped quote inside quotes",
			s:    `msg:'it\'s, fine',id:7`,
			want: []action{{"msg", `it\'s, fine`}, {"id", "7"}},
		},
		{
			name: "spaces and empty parts",
			s:    " id:1 , , pass ,",
			want: []action{{"id", "1"}, {"pass", ""}},
		},
		{name: "unterminated quote", s: "msg:'a,b", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseActions(tc.s)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error: %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestChainTNone: t:none drops the transformations before it, as Coraza
// does.
func TestChainTNone(t *testing.T) {
	p, err := Compile(fstest.MapFS{}, gateConfig(`SecRule ARGS "@rx AA" "id:10,phase:2,block,t:lowercase,t:none,t:urlDecode"`), testOptions)
	if err != nil {
		t.Fatal(err)
	}
	l := p.phases[2][0].levels[0]
	out := "A%41"
	for _, tr := range p.chains[l.chain] {
		if r, _, err := tr(out); err == nil {
			out = r
		}
	}
	if out != "AA" {
		t.Fatalf("chain turns %q into %q, want %q (urlDecode only)", "A%41", out, "AA")
	}
}

func TestParseVars(t *testing.T) {
	tests := []struct {
		name    string
		s       string
		want    []ruleVar
		wantErr bool
	}{
		{name: "names upper case", s: "args|Request_Headers", want: []ruleVar{{name: "ARGS"}, {name: "REQUEST_HEADERS"}}},
		{
			name: "keys",
			s:    "REQUEST_HEADERS:User-Agent|ARGS:q",
			want: []ruleVar{{name: "REQUEST_HEADERS", key: "User-Agent"}, {name: "ARGS", key: "q"}},
		},
		{
			name: "negation and count",
			s:    "ARGS|!ARGS:foo|&REQUEST_HEADERS:Host|!&X",
			want: []ruleVar{{name: "ARGS"}, {name: "ARGS", key: "foo", negation: true}, {name: "REQUEST_HEADERS", key: "Host", count: true}, {name: "X", count: true, negation: true}},
		},
		{
			name: "regex key containing |",
			s:    "ARGS:/^(?:a|b)$/|!REQUEST_COOKIES:/__utm|_ga/|TX",
			want: []ruleVar{{name: "ARGS", key: "/^(?:a|b)$/"}, {name: "REQUEST_COOKIES", key: "/__utm|_ga/", negation: true}, {name: "TX"}},
		},
		{
			name: "regex key with escaped slash",
			s:    `ARGS_NAMES:/^a\/b|c$/|ARGS`,
			want: []ruleVar{{name: "ARGS_NAMES", key: `/^a\/b|c$/`}, {name: "ARGS"}},
		},
		{
			name: "quoted key",
			s:    "REQUEST_COOKIES:'a|b'|ARGS",
			want: []ruleVar{{name: "REQUEST_COOKIES", key: "a|b"}, {name: "ARGS"}},
		},
		{
			name: "XML xpath kept whole",
			s:    "ARGS_NAMES|ARGS|XML:/*",
			want: []ruleVar{{name: "ARGS_NAMES"}, {name: "ARGS"}, {name: "XML", key: "/*"}},
		},
		{
			name: "XML xpath then more",
			s:    "XML:/*|REQUEST_BODY",
			want: []ruleVar{{name: "XML", key: "/*"}, {name: "REQUEST_BODY"}},
		},
		{name: "unterminated regex key", s: "ARGS:/abc", wantErr: true},
		{name: "unterminated quoted key", s: "ARGS:'abc", wantErr: true},
		{name: "empty name", s: "ARGS||REQUEST_URI", wantErr: true},
		{name: "only negation", s: "!", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVars(tc.s)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseIDRanges(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		want    [][2]int
		wantErr bool
	}{
		{name: "one", args: "920100", want: [][2]int{{920100, 920100}}},
		{name: "ids and ranges", args: "932170 932171 932100-932169", want: [][2]int{{932170, 932170}, {932171, 932171}, {932100, 932169}}},
		{name: "quoted", args: `"942100" '942200-942299'`, want: [][2]int{{942100, 942100}, {942200, 942299}}},
		{name: "empty", args: "  "},
		{name: "not a number", args: "920100 abc", wantErr: true},
		{name: "bad range end", args: "920100-", wantErr: true},
		{name: "bad range start", args: "-920100", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseIDRanges(tc.args)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

var testOptions = Options{GateIDs: []int{9000001, 9000002}, EndMarker: "GATE-END"}

// gateConfig puts rules between the two gate rules and the end marker.
func gateConfig(rules string) string {
	return `SecRule REQUEST_METHOD "@unconditionalMatch" "id:9000001,phase:1,pass,nolog,skipAfter:GATE-END"
SecRule REQUEST_METHOD "@unconditionalMatch" "id:9000002,phase:2,pass,nolog,skipAfter:GATE-END"
` + rules + `
SecMarker GATE-END
`
}

// FuzzParse compiles random directive text (between the gate rules, and as
// a whole configuration) with a small file system: no input may panic.
func FuzzParse(f *testing.F) {
	root := fstest.MapFS{
		"r/a.conf":    {Data: []byte("SecRule ARGS \"@rx a\" \"id:1,phase:2,block\"\n")},
		"r/words.txt": {Data: []byte("select\nunion\n")},
	}
	seeds := []string{
		`SecRule ARGS "@rx (?i)select" "id:1,phase:2,block,t:none,t:lowercase"`,
		`SecRule ARGS|!ARGS:/^x|y$/|REQUEST_COOKIES:'a|b'|XML:/* "!@rx \"x" "id:2,phase:1,pass,capture,chain"` + "\n" +
			`    SecRule TX:1 "@streq %{tx.0}" "setvar:tx.a=+1"`,
		`SecAction "id:3,phase:1,pass,nolog,setvar:'tx.x=1'"`,
		`SecRule &REQUEST_HEADERS:Host "@eq 0" "id:4,phase:1,block,ctl:ruleRemoveTargetById=1;ARGS:q"`,
		`SecRule ARGS "@pmFromFile words.txt" "id:5,phase:2,block"`,
		`Include r/a.conf`,
		`SecRuleRemoveById 1 2-3` + "\n" + `SecRuleRemoveByTag x` + "\n" + `SecRuleUpdateTargetById 1 "!ARGS:q"`,
		`SecRule ARGS "@rx \xac\xed" "id:6,phase:2,block,multiMatch,t:base64Decode"`,
		`SecRule REQUEST_URI "@within %{tx.allowed}" "id:7,phase:1,block,t:urlDecodeUni" \`,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if p, err := Compile(root, gateConfig(text), testOptions); err == nil {
			_ = p.Stats()
			_ = p.Rules(1)
		}
		_, _ = Compile(root, text, testOptions)
	})
}

// TestCompileRemovalOrder: SecRuleRemoveById and SecRuleRemoveByTag remove
// the rules defined before them, as in Coraza. A gate that also dropped
// rules defined after a removal would prove a request clean without them,
// and Coraza would skip rules it does run.
func TestCompileRemovalOrder(t *testing.T) {
	const rules = `SecRule ARGS "@rx attack" "id:10,phase:2,deny,log,msg:'x',tag:t1"
SecRule ARGS "@rx attack" "id:11,phase:2,deny,log,msg:'x',tag:t2"
`
	tests := []struct {
		name string
		text string
		want []int
	}{
		{"none", rules, []int{10, 11}},
		{"by id after", rules + "SecRuleRemoveById 10", []int{11}},
		{"by range after", rules + "SecRuleRemoveById 9-11", nil},
		{"by tag after", rules + "SecRuleRemoveByTag t2", []int{10}},
		{"by id before", "SecRuleRemoveById 10 11\n" + rules, []int{10, 11}},
		{"by tag before", "SecRuleRemoveByTag t1\n" + rules, []int{10, 11}},
		{"between", "SecRule ARGS \"@rx a\" \"id:10,phase:2,deny,log,msg:'x'\"\nSecRuleRemoveById 10-11\nSecRule ARGS \"@rx b\" \"id:11,phase:2,deny,log,msg:'x'\"", []int{11}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(fstest.MapFS{}, gateConfig(tc.text), testOptions)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Rules(2); !slices.Equal(got, tc.want) {
				t.Fatalf("gate covers %v, want %v", got, tc.want)
			}
		})
	}
}
