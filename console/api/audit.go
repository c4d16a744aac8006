package api

import (
	"time"

	"github.com/taskguard/taskguard/console/policy"
)

// AuditKind names the sensor that produced an audit.
type AuditKind string

// The audit kinds.
const (
	AuditProcess  AuditKind = "process"
	AuditNetwork  AuditKind = "network"
	AuditDNS      AuditKind = "dns"
	AuditWAF      AuditKind = "waf"
	AuditDefender AuditKind = "defender" // the defender's own state, e.g. protection could not start
	AuditImage    AuditKind = "image"    // a finding of an image running in a task, alerted by an image rule
	AuditThreat   AuditKind = "threat"   // a finding of a built-in runtime threat detector (Detector names it)
)

// Audit is one record, the same shape for every sensor. Defenders post them in
// batches to PathAgentAudits; ID makes a retried post idempotent.
type Audit struct {
	// ID is unique per record (random, made by the defender); the console
	// stores a record once however often it is posted.
	ID         string        `json:"id"`
	Time       time.Time     `json:"time"`
	TaskFamily string        `json:"taskFamily,omitempty"`
	TaskID     string        `json:"taskId,omitempty"`
	Container  string        `json:"container,omitempty"`
	Image      string        `json:"image,omitempty"`
	Kind       AuditKind     `json:"kind"`
	Effect     policy.Effect `json:"effect"`
	Rule       string        `json:"rule,omitempty"`
	// Detector is the ID of the built-in threat detector behind a threat
	// audit ("drift", "reverse-shell", ...; policy.Detectors) and Technique
	// its MITRE ATT&CK technique ("T1059.004").
	Detector  string `json:"detector,omitempty"`
	Technique string `json:"technique,omitempty"`
	// Severity is "low", "medium", "high" or "critical"; empty means medium.
	Severity string `json:"severity,omitempty"`
	// Message is the human sentence, e.g. "DNS resolution of suspicious name yahoo.com".
	Message string `json:"message"`
	// Count is how many identical events this record stands for (aggregated
	// repeats); 0 and 1 both mean one. FirstSeen/LastSeen bound them.
	Count     int       `json:"count,omitempty"`
	FirstSeen time.Time `json:"firstSeen,omitzero"`
	LastSeen  time.Time `json:"lastSeen,omitzero"`

	Process *ProcessDetail `json:"process,omitempty"`
	Network *NetworkDetail `json:"network,omitempty"`
	WAF     *WAFDetail     `json:"waf,omitempty"`
}

// ProcessDetail describes an exec.
type ProcessDetail struct {
	// Path is the file that ran, as the kernel resolved it (every symlink
	// followed: /usr/bin/wget on a usr-merged image).
	Path string `json:"path"`
	// CalledAs is the name the program was called by when it differs from
	// Path (/bin/wget); the audit's message words it this way.
	CalledAs string   `json:"calledAs,omitempty"`
	Parent   string   `json:"parent,omitempty"` // the parent's executable path
	Argv     []string `json:"argv,omitempty"`
	PID      int      `json:"pid,omitempty"`
	// SHA256 is the hex SHA-256 of the file that ran, when known.
	SHA256 string `json:"sha256,omitempty"`
	// Tree is the caller's ancestry read from /proc, the caller first
	// (threat audits).
	Tree []ProcessAncestor `json:"tree,omitempty"`
}

// ProcessAncestor is one process of an audit's process tree.
type ProcessAncestor struct {
	PID  int      `json:"pid"`
	Path string   `json:"path,omitempty"`
	Argv []string `json:"argv,omitempty"`
}

// NetworkDetail describes a DNS query, an outbound connection or a listener.
type NetworkDetail struct {
	Direction string `json:"direction,omitempty"` // "outbound", "listen" or "dns"
	Domain    string `json:"domain,omitempty"`
	IP        string `json:"ip,omitempty"`
	Port      int    `json:"port,omitempty"`
	Protocol  string `json:"protocol,omitempty"` // "tcp" or "udp"
}

// WAFDetail describes an inspected HTTP request. Payload is a bounded excerpt;
// credentials (Authorization, Cookie) never appear in it.
type WAFDetail struct {
	EventID     string   `json:"eventId"`
	Method      string   `json:"method"`
	Path        string   `json:"path"`
	Source      string   `json:"source"`
	Protections []string `json:"protections,omitempty"`
	RuleIDs     []int    `json:"ruleIds,omitempty"`
	Payload     string   `json:"payload,omitempty"`
}

// AuditBatch is the body of a POST to PathAgentAudits.
type AuditBatch struct {
	Audits []Audit `json:"audits"`
}
