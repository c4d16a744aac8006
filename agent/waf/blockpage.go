package waf

import (
	"html/template"
	"net/http"
)

// EventIDHeader carries the event ID of a blocked request in the block page response.
const EventIDHeader = "X-Taskguard-Event-Id"

var blockPage = template.Must(template.New("block").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Request blocked by taskguard</title></head>
<body>
<h1>Request blocked by taskguard</h1>
<p>This request was blocked by the taskguard web application firewall protecting this service.</p>
<p>Event ID: <code>{{.}}</code></p>
<p>If you believe this is a mistake, contact the service owner and quote the event ID.</p>
</body>
</html>
`))

// writeBlockPage answers a prevented request with 403 and the block page.
func writeBlockPage(w http.ResponseWriter, eventID string) {
	writeStatusPage(w, http.StatusForbidden, eventID)
}

// writeStatusPage answers a prevented request with status and the block page.
func writeStatusPage(w http.ResponseWriter, status int, eventID string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set(EventIDHeader, eventID)
	w.WriteHeader(status)
	_ = blockPage.Execute(w, eventID)
}
