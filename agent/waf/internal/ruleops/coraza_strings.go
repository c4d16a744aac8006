// Copyright 2022 Juan Pablo Tosso and the OWASP Coraza contributors
// SPDX-License-Identifier: Apache-2.0
// Copied from Coraza v3.8.1 internal/strings; see NOTICE.

package ruleops

import "unsafe"

// validHex returns true if the byte is a valid hex character
func validHex(x byte) bool {
	return (x >= '0' && x <= '9') || (x >= 'a' && x <= 'f') || (x >= 'A' && x <= 'F')
}

// x2c converts a hex character to its ascii value
func x2c(what string) byte {
	var digit byte
	if what[0] >= 'A' {
		digit = ((what[0] & 0xdf) - 'A') + 10
	} else {
		digit = what[0] - '0'
	}
	digit *= 16
	if what[1] >= 'A' {
		digit += ((what[1] & 0xdf) - 'A') + 10
	} else {
		digit += what[1] - '0'
	}

	return digit
}

// wrapUnsafe wraps the provided buffer as a string. The buffer
// must not be mutated after calling this function.
func wrapUnsafe(buf []byte) string {
	return *(*string)(unsafe.Pointer(&buf))
}
