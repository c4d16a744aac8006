package waf

import (
	"net/http"
	"strings"
)

// scannerAgents are user-agent fragments (lower case) of scanners and
// attack tools that CRS 913's list (scanners-user-agents.data) does not
// name (a test checks it): discovery, fuzzing and internet-wide scanners.
var scannerAgents = []string{
	"ffuf", "dirsearch", "httpx - open-source", "projectdiscovery", "jaeles", "invicti", "burpcollaborator",
	"nexpose", "appscan", "censysinspect", "expanse", "internet-measurement", "leakix", "xpanse",
	"zmap", "shodan", "dalfox", "katana", "hakrawler", "interactsh", "naabu",
}

// headlessAgents are user-agent fragments of driven browsers.
var headlessAgents = []string{"headlesschrome", "phantomjs", "selenium", "puppeteer", "playwright", "slimerjs"}

// botSignals returns why r looks automated, or "" when it does not: a
// scanner or headless user agent, no user agent at all, or a user agent
// claiming a browser without the headers every browser sends.
func botSignals(r *http.Request) string {
	ua := r.Header.Get("User-Agent")
	if strings.TrimSpace(ua) == "" {
		return "request without a User-Agent"
	}
	lower := strings.ToLower(ua)
	for _, s := range scannerAgents {
		if strings.Contains(lower, s) {
			return "scanner user agent (" + s + ")"
		}
	}
	for _, s := range headlessAgents {
		if strings.Contains(lower, s) {
			return "headless browser user agent (" + s + ")"
		}
	}
	if strings.HasPrefix(lower, "mozilla/") && r.Header.Get("Upgrade") == "" {
		var missing []string
		for _, h := range []string{"Accept", "Accept-Language", "Accept-Encoding"} {
			if r.Header.Get(h) == "" {
				missing = append(missing, h)
			}
		}
		if len(missing) > 0 {
			return "browser user agent without " + strings.Join(missing, ", ")
		}
	}
	return ""
}
