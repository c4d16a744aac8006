package ruleops

import (
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// crsChains are multi-step transformation chains that CRS request rules use.
var crsChains = []string{
	"utf8toUnicode,urlDecodeUni,htmlEntityDecode,jsDecode,cssDecode,removeNulls",
	"utf8toUnicode,urlDecodeUni,htmlEntityDecode,jsDecode,cssDecode,removeComments",
	"urlDecodeUni,htmlEntityDecode,lowercase,removeWhitespace",
	"urlDecodeUni,cmdLine,normalizePath,lowercase",
	"urlDecodeUni,replaceComments",
	"urlDecodeUni,removeNulls,removeCommentsChar,lowercase",
	"utf8toUnicode,urlDecodeUni,normalizePathWin",
	"urlDecodeUni,base64DecodeExt,lowercase",
	"urlDecode,hexDecode,urlDecodeUni",
	"lowercase,compressWhitespace,trim,length",
	"urlDecodeUni,escapeSeqDecode,sha1,hexEncode",
	"urlEncode,base64Encode,base64Decode,md5,hexEncode",
}

// transformationNames returns every transformation name, each in the spelling CRS uses.
func transformationNames() []string {
	names := []string{
		"none", "lowercase", "uppercase", "urlDecode", "urlDecodeUni", "utf8toUnicode", "htmlEntityDecode",
		"jsDecode", "cssDecode", "removeNulls", "replaceNulls", "cmdLine", "replaceComments", "removeComments",
		"removeCommentsChar", "normalizePath", "normalisePath", "normalizePathWin", "normalisePathWin", "length",
		"removeWhitespace", "compressWhitespace", "base64Decode", "base64DecodeExt", "hexDecode",
		"escapeSeqDecode", "trim", "trimLeft", "trimRight", "md5", "sha1", "hexEncode", "urlEncode", "base64Encode",
	}
	return names
}

func TestTransformationNames(t *testing.T) {
	want := map[string]bool{}
	for _, n := range transformationNames() {
		want[strings.ToLower(n)] = true
		for _, spelling := range []string{n, strings.ToUpper(n), strings.ToLower(n)} {
			if _, err := GetTransformation(spelling); err != nil {
				t.Errorf("GetTransformation(%q): %v", spelling, err)
			}
		}
	}
	got := TransformationNames()
	sort.Strings(got)
	for _, n := range got {
		if !want[n] {
			t.Errorf("TransformationNames has %q, which the tests do not cover", n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("TransformationNames has %d names, want %d", len(got), len(want))
	}
	if _, err := GetTransformation("sqlHexDecode"); err == nil || !strings.Contains(err.Error(), `"sqlHexDecode"`) {
		t.Errorf("GetTransformation(sqlHexDecode) = %v, want an error naming it (Coraza v3.8.1 has no sqlHexDecode)", err)
	}
	// Coraza agrees on case-insensitivity and on the unknown name.
	transformationWAF(t, "URLDECODEUNI,HtmlEntityDecode")
	if _, err := cachedWAF("SecRule ARGS:x \"@tgprobe\" \"id:1,phase:2,pass,t:sqlHexDecode\""); err == nil {
		t.Errorf("coraza accepts t:sqlHexDecode")
	}
}

func TestTransformationsMatchCoraza(t *testing.T) {
	values := append(append([]string{}, edgeValues...), corpusValues(t, 150)...)
	chains := append(transformationNames(), crsChains...)
	for _, chain := range chains {
		t.Run(chain, func(t *testing.T) {
			for _, v := range values {
				checkTransformation(t, chain, v)
			}
		})
	}
	t.Logf("%d chains × %d values", len(chains), len(values))
}

// opCases are operators with the kinds of arguments CRS gives them.
var opCases = []opCase{
	{op: "pm", arg: "select union insert"},
	{op: "pm", arg: "document.cookie document.domain .innerhtml window.location -moz-binding <!-- <![cdata["},
	{op: "pm", arg: "( )"},
	{op: "pm", arg: "?>"},
	{op: "pm", arg: "AppleWebKit Android"},
	{op: "pm", arg: "a  b"}, // an empty pattern matches everything
	{op: "pm", arg: "é ÉCOLE"},
	{op: "pmFromFile", arg: "unix-shell.data", corazaArg: "@owasp_crs/unix-shell.data"},
	{op: "pmFromFile", arg: "lfi-os-files.data", corazaArg: "@owasp_crs/lfi-os-files.data"},
	{op: "pmFromFile", arg: "restricted-files.data", corazaArg: "@owasp_crs/restricted-files.data"},
	{op: "pmFromFile", arg: "php-variables.data", corazaArg: "@owasp_crs/php-variables.data"},
	{op: "pmFromFile", arg: "windows-powershell-commands.data", corazaArg: "@owasp_crs/windows-powershell-commands.data"},
	{op: "pmf", arg: "java-classes.data", corazaArg: "@owasp_crs/java-classes.data"},
	{op: "pmFromFile", arg: "ssrf.data", corazaArg: "@owasp_crs/ssrf.data"},
	{op: "pmFromFile", arg: "no-such.data", corazaArg: "@owasp_crs/no-such.data"},
	{op: "within", arg: "GET HEAD POST OPTIONS"},
	{op: "within", arg: "|application/x-www-form-urlencoded| |multipart/form-data|"},
	{op: "streq", arg: "admin"},
	{op: "streq", arg: "0"},
	{op: "contains", arg: "../"},
	{op: "contains", arg: "a"},
	{op: "strmatch", arg: "wget"},
	{op: "beginsWith", arg: "/admin"},
	{op: "beginsWith", arg: "GET"},
	{op: "endsWith", arg: ".php"},
	{op: "eq", arg: "0"},
	{op: "eq", arg: "5"},
	{op: "eq", arg: "abc"},
	{op: "eq", arg: "99999999999999999999"},
	{op: "ge", arg: "5"},
	{op: "gt", arg: "0"},
	{op: "gt", arg: "-5"},
	{op: "le", arg: "5"},
	{op: "lt", arg: "5"},
	{op: "lt", arg: "x"},
	{op: "validateByteRange", arg: "1-255"},
	{op: "validateByteRange", arg: "32-126"},
	{op: "validateByteRange", arg: "9,10,13,32-126,128-255"},
	{op: "validateByteRange", arg: "38,44-46,48-58,61,65-90,95,97-122"},
	{op: "validateByteRange", arg: "300"},
	{op: "validateByteRange", arg: "a-b"},
	{op: "validateByteRange", arg: "10-5"},
	{op: "validateUrlEncoding"},
	{op: "validateUtf8Encoding"},
	{op: "detectSQLi"},
	{op: "detectXSS"},
	{op: "unconditionalMatch"},
	{op: "noMatch"},
	{op: "ipMatch", arg: "127.0.0.1,10.0.0.0/8,::1"},
	{op: "ipMatch", arg: "192.168.0.0/16, 2001:db8::/32, junk"},
}

func TestOperatorsMatchCoraza(t *testing.T) {
	values := append(append([]string{}, edgeValues...), corpusValues(t, 150)...)
	for _, c := range opCases {
		t.Run(c.String(), func(t *testing.T) {
			for _, v := range values {
				checkOperator(t, c, v)
			}
		})
	}
	t.Logf("%d operator cases × %d values", len(opCases), len(values))
}

func TestNewOperatorErrors(t *testing.T) {
	for _, name := range []string{"rx", "PM", "nosuch", "geoLookup"} {
		if _, err := NewOperator(name, "x", crsDir(t)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("NewOperator(%q) = %v, want an error naming it", name, err)
		}
	}
}

func TestOperatorsConcurrent(t *testing.T) {
	values := edgeValues
	var wg sync.WaitGroup
	for _, c := range opCases {
		op, err := NewOperator(c.op, c.arg, crsDir(t))
		if err != nil {
			continue
		}
		want := make([]bool, len(values))
		for i, v := range values {
			want[i] = op.Match(v)
		}
		for range 4 {
			wg.Go(func() {
				for i, v := range values {
					if op.Match(v) != want[i] {
						t.Errorf("%s on %q: result differs between goroutines", c, v)
					}
				}
			})
		}
	}
	wg.Wait()
}

func FuzzTransformations(f *testing.F) {
	for _, v := range edgeValues {
		f.Add(v)
	}
	chains := append(transformationNames(), crsChains...)
	f.Fuzz(func(t *testing.T, value string) {
		for _, chain := range chains {
			checkTransformation(t, chain, value)
		}
	})
}

// fuzzArgOps take an argument the fuzzer varies; the other opCases run with
// their fixed arguments.
var fuzzArgOps = []string{"pm", "within", "streq", "contains", "strmatch", "beginsWith", "endsWith",
	"eq", "ge", "gt", "le", "lt", "validateByteRange", "ipMatch"}

func FuzzOperators(f *testing.F) {
	for i, v := range edgeValues {
		f.Add(v, opCases[i%len(opCases)].arg)
	}
	f.Fuzz(func(t *testing.T, value, arg string) {
		for _, c := range opCases {
			checkOperator(t, c, value)
		}
		if !ruleSafe(arg) {
			return
		}
		for _, op := range fuzzArgOps {
			checkOperator(t, opCase{op: op, arg: arg}, value)
		}
	})
}

// ruleSafe reports whether arg can be written as is inside a quoted SecRule
// operator: non-empty, printable ASCII, no quote or backslash, no macro, no
// surrounding space (Coraza's parser trims it).
func ruleSafe(arg string) bool {
	if arg == "" || strings.TrimSpace(arg) != arg || strings.Contains(arg, "%{") || !utf8.ValidString(arg) {
		return false
	}
	for i := 0; i < len(arg); i++ {
		if c := arg[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
