package compliance

import (
	"regexp"
	"strings"
)

// secretName matches variable names that usually hold credentials.
var secretName = regexp.MustCompile(`(?i)(passw(or)?d|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth[_-]?key|client[_-]?secret)`)

// secretValues match values that are credentials whatever their name.
var secretValues = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"an AWS access key ID", regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{"a GitHub token", regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{36,}\b`)},
	{"a Slack token", regexp.MustCompile(`\bxox[baprs]-[A-Za-z0-9-]{10,}`)},
	{"a private key", regexp.MustCompile(`-----BEGIN ((RSA|EC|DSA|OPENSSH|ENCRYPTED) )?PRIVATE KEY-----`)},
	{"a Stripe secret key", regexp.MustCompile(`\bsk_live_[0-9a-zA-Z]{20,}\b`)},
}

// notSecret reports values that only point at a secret, or are too short to be one.
func notSecret(v string) bool {
	v = strings.TrimSpace(v)
	return len(v) < 4 || strings.HasPrefix(v, "arn:") || strings.HasPrefix(v, "/run/secrets/") || strings.HasPrefix(v, "${")
}

// referenceName matches names whose value names a secret instead of holding it.
var referenceName = regexp.MustCompile(`(?i)_(FILE|PATH|ARN|URL|URI|NAME|ENDPOINT|ENABLED|ID)$`)

// secretKind says why name=value looks like a credential, or "" when it does
// not. The value itself never appears in what it returns.
func secretKind(name, value string) string {
	if notSecret(value) {
		return ""
	}
	for _, s := range secretValues {
		if s.re.MatchString(value) {
			return s.kind
		}
	}
	if secretName.MatchString(name) && !referenceName.MatchString(name) {
		return "a value under a credential-like name"
	}
	return ""
}
