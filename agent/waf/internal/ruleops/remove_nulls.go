// Copyright 2022 Juan Pablo Tosso and the OWASP Coraza contributors
// SPDX-License-Identifier: Apache-2.0
// Copied from Coraza v3.8.1 internal/transformations; see NOTICE.

package ruleops

import (
	"strings"
)

// removeNulls removes NUL bytes in input.
func removeNulls(data string) (string, bool, error) {
	transformedData := strings.ReplaceAll(data, "\x00", "")
	return transformedData, len(data) != len(transformedData), nil
}
