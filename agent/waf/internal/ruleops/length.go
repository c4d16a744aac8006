// Copyright 2022 Juan Pablo Tosso and the OWASP Coraza contributors
// SPDX-License-Identifier: Apache-2.0
// Copied from Coraza v3.8.1 internal/transformations; see NOTICE.

package ruleops

import (
	"strconv"
)

func length(data string) (string, bool, error) {
	transformedData := strconv.Itoa(len(data))
	return transformedData, true, nil
}
