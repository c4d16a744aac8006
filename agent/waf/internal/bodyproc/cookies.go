// Copyright 2024 Juan Pablo Tosso and the OWASP Coraza contributors
// SPDX-License-Identifier: Apache-2.0

package bodyproc

import "strings"

// ParseCookies is Coraza v3.8.1's internal/cookies.ParseCookies: the
// cookies of a Cookie header value by name, as AddRequestHeader adds them
// to REQUEST_COOKIES. Names and values are not checked; a name that is
// empty (or only CTLs and spaces) is kept under "" unless its value is
// empty too.
func ParseCookies(rawCookies string) map[string][]string {
	cookies := make(map[string][]string)
	EachCookie(rawCookies, func(name, val string) {
		cookies[name] = append(cookies[name], val)
	})
	return cookies
}

// EachCookie calls f with every cookie of a Cookie header value, in order:
// the pairs ParseCookies groups by name.
func EachCookie(rawCookies string, f func(name, val string)) {
	rawCookies = trimCTLAndSpace(rawCookies)

	var part string
	for len(rawCookies) > 0 { // continue since we have rest
		part, rawCookies, _ = strings.Cut(rawCookies, ";")
		part = trimCTLAndSpace(part)
		if part == "" {
			continue
		}
		name, val, _ := strings.Cut(part, "=")
		name = trimCTLAndSpace(name)
		val = trimCTLAndSpace(val)
		if name == "" && val == "" {
			continue
		}
		f(name, val)
	}
}

// trimCTLAndSpace trims leading and trailing ASCII control characters
// (0x00-0x1F, 0x7F) and spaces, as RFC 6265's cookie grammar excludes them.
func trimCTLAndSpace(s string) string {
	start := 0
	for start < len(s) && (s[start] <= 0x20 || s[start] == 0x7f) {
		start++
	}
	end := len(s)
	for end > start && (s[end-1] <= 0x20 || s[end-1] == 0x7f) {
		end--
	}
	return s[start:end]
}
