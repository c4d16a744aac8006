// Package ruleops holds faithful copies of the SecLang transformations and
// operators of Coraza v3.8.1, which Coraza keeps in internal packages, so that
// the WAF's gate can prove before Coraza runs that no CRS request rule can
// match a request.
//
// GetTransformation returns a transformation (t:name) by case-insensitive
// name; NewOperator returns an operator (@name argument) other than @rx. Their
// results equal Coraza's for every input: the differential tests and fuzz
// targets in this package run each one beside a real Coraza WAF.
//
// What the package is not: a rule engine. It does not expand macros (the
// caller passes %{tx.x} already expanded), does not capture (no TX:0..9), does
// not negate ("!@op"), and does not chain transformations. Coraza chains them
// in order and, when one returns an error, records it and goes on with the
// unchanged input (hexDecode of invalid hex; md5 and sha1 in FIPS 140-3 mode).
// With multiMatch it evaluates the operator on the input and on every value a
// transformation reports as changed, and an output reported as unchanged is
// dropped: the next transformation gets the previous value. The changed flag
// is Coraza's, not a comparison: htmlEntityDecode compares lengths, so
// "&#0" → U+FFFD (three bytes each) reports unchanged.
//
// Code copied from Coraza keeps its copyright header; see NOTICE.
package ruleops
