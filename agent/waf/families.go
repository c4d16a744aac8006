package waf

import "github.com/taskguard/taskguard/console/policy"

// Family is the part of the OWASP Core Rule Set behind one protection: the
// rule files loaded for it and the rule-ID ranges it owns.
type Family struct {
	Protection policy.Protection
	// Files are CRS rule files (relative to the embedded @owasp_crs folder).
	Files []string
	// Ranges are inclusive rule-ID ranges; a match is attributed to the first
	// family whose range holds its ID.
	Ranges [][2]int
}

// Families maps every protection to its CRS rule families. Shellshock (932170,
// 932171) sits inside the RCE file: when only one of cmdi and shellshock is on,
// the other's rules are removed after loading. protocol also owns Coraza's own
// body-parsing guards (200002 body failed to parse, 200003 multipart strict).
var Families = []Family{
	{Protection: policy.ProtectionShellshock, Files: []string{"REQUEST-932-APPLICATION-ATTACK-RCE.conf"}, Ranges: [][2]int{{932170, 932171}}},
	{Protection: policy.ProtectionSQLi, Files: []string{"REQUEST-942-APPLICATION-ATTACK-SQLI.conf"}, Ranges: [][2]int{{942000, 942999}}},
	{Protection: policy.ProtectionXSS, Files: []string{"REQUEST-941-APPLICATION-ATTACK-XSS.conf"}, Ranges: [][2]int{{941000, 941999}}},
	{Protection: policy.ProtectionCmdi, Files: []string{"REQUEST-932-APPLICATION-ATTACK-RCE.conf"}, Ranges: [][2]int{{932000, 932999}}},
	{Protection: policy.ProtectionLFI, Files: []string{"REQUEST-930-APPLICATION-ATTACK-LFI.conf", "REQUEST-931-APPLICATION-ATTACK-RFI.conf"}, Ranges: [][2]int{{930000, 931999}}},
	{Protection: policy.ProtectionCodeInjection, Files: []string{"REQUEST-933-APPLICATION-ATTACK-PHP.conf", "REQUEST-934-APPLICATION-ATTACK-GENERIC.conf", "REQUEST-944-APPLICATION-ATTACK-JAVA.conf"}, Ranges: [][2]int{{933000, 934999}, {944000, 944999}}},
	{Protection: policy.ProtectionAttackTools, Files: []string{"REQUEST-913-SCANNER-DETECTION.conf"}, Ranges: [][2]int{{913000, 913999}}},
	{Protection: policy.ProtectionProtocol, Files: []string{"REQUEST-911-METHOD-ENFORCEMENT.conf", "REQUEST-920-PROTOCOL-ENFORCEMENT.conf", "REQUEST-921-PROTOCOL-ATTACK.conf", "REQUEST-922-MULTIPART-ATTACK.conf"}, Ranges: [][2]int{{911000, 911999}, {920000, 922999}, {200002, 200003}}},
}

// ProtectionOf returns the protection a CRS rule ID belongs to, or "" for
// rules outside every family (initialisation, scoring, markers).
func ProtectionOf(id int) policy.Protection {
	if id >= extraIDBase+900000 && id < extraIDBase+1000000 {
		id -= extraIDBase // a copy of the extended detection (extras.go)
	}
	for _, f := range Families {
		for _, r := range f.Ranges {
			if id >= r[0] && id <= r[1] {
				return f.Protection
			}
		}
	}
	return ""
}
