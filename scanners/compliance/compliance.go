package compliance

// Severities, named as the vulnerability findings name theirs.
const (
	SeverityCritical = "CRITICAL"
	SeverityHigh     = "HIGH"
	SeverityMedium   = "MEDIUM"
	SeverityLow      = "LOW"
)

// Families of checks.
const (
	FamilyTask  = "task"
	FamilyImage = "image"
)

// Check describes one compliance check. IDs never change meaning; a check
// that is replaced gets a new ID.
type Check struct {
	ID          string `json:"id"`
	Family      string `json:"family"`
	Title       string `json:"title"`
	Severity    string `json:"severity"`
	Remediation string `json:"remediation"`
}

// Finding is one failed check on one target.
type Finding struct {
	CheckID  string `json:"checkID"`
	Family   string `json:"family"`
	Title    string `json:"title"`
	Severity string `json:"severity"`
	// Target names what failed: a container ("container web"), a file path, the task.
	Target      string `json:"target"`
	Message     string `json:"message"`
	Remediation string `json:"remediation"`
}

func (c Check) finding(target, message string) Finding {
	return Finding{
		CheckID: c.ID, Family: c.Family, Title: c.Title, Severity: c.Severity,
		Target: target, Message: message, Remediation: c.Remediation,
	}
}
