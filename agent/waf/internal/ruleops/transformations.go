// Copyright 2022 Juan Pablo Tosso and the OWASP Coraza contributors
// SPDX-License-Identifier: Apache-2.0
// Copied from Coraza v3.8.1 internal/transformations; see NOTICE.

package ruleops

import (
	"fmt"
	"strings"
)

// Transformation is one SecLang t: action: it returns the transformed input,
// whether the transformation reports a change, and an error. It has the
// signature of Coraza's plugintypes.Transformation. When a transformation
// fails, Coraza's rule engine records the error and goes on with the input
// unchanged (hexDecode of invalid hex, md5 and sha1 in FIPS 140-3 mode).
type Transformation func(input string) (output string, changed bool, err error)

// transformations maps lowercased names to functions, as Coraza registers them.
var transformations = map[string]Transformation{
	"base64decode":       base64decode,
	"base64decodeext":    base64decodeext,
	"base64encode":       base64encode,
	"cmdline":            cmdLine,
	"compresswhitespace": compressWhitespace,
	"cssdecode":          cssDecode,
	"escapeseqdecode":    escapeSeqDecode,
	"hexdecode":          hexDecode,
	"hexencode":          hexEncode,
	"htmlentitydecode":   htmlEntityDecode,
	"jsdecode":           jsDecode,
	"length":             length,
	"lowercase":          lowerCase,
	"md5":                md5T,
	"none":               none,
	"normalisepath":      normalisePath,
	"normalisepathwin":   normalisePathWin,
	"normalizepath":      normalisePath,
	"normalizepathwin":   normalisePathWin,
	"removecomments":     removeComments,
	"removecommentschar": removeCommentsChar,
	"removenulls":        removeNulls,
	"removewhitespace":   removeWhitespace,
	"replacecomments":    replaceComments,
	"replacenulls":       replaceNulls,
	"sha1":               sha1T,
	"uppercase":          upperCase,
	"urldecode":          urlDecode,
	"urldecodeuni":       urlDecodeUni,
	"urlencode":          urlEncode,
	"utf8tounicode":      utf8ToUnicode,
	"trim":               trim,
	"trimleft":           trimLeft,
	"trimright":          trimRight,
}

// TransformationNames returns the names Transformation accepts, lowercased, in
// no particular order.
func TransformationNames() []string {
	names := make([]string, 0, len(transformations))
	for n := range transformations {
		names = append(names, n)
	}
	return names
}

// GetTransformation returns the transformation called name, matched
// case-insensitively (strings.ToLower) as Coraza does. An unknown name is an
// error that names it.
func GetTransformation(name string) (Transformation, error) {
	if t, ok := transformations[strings.ToLower(name)]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("invalid transformation name %q", name)
}
