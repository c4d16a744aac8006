// Package gate proves, for one request phase, that none of a range of
// Coraza rules can match a transaction, so that Coraza may skip them.
//
// Compile reads the same SecLang configuration Coraza loads (Include
// resolved in the same file system) and compiles the rules between the gate
// rules and the end marker, after the configuration's removals and target
// updates. Clean evaluates them against the transaction's own collections,
// the way Coraza's rule engine would: the same variable selection
// (Transaction.GetField's rules, exceptions included), Coraza's own
// transformations and operators (package ruleops), chains with their
// captures, setvar and MATCHED_VARS. It answers true only when no rule
// matches. What it cannot decide exactly makes it answer false:
//
//   - a chain level that matched without its chain leaves state that another
//     rule reads (a setvar of a TX variable read elsewhere, a ctl action);
//   - an operator whose macro argument cannot be built;
//   - any rule that matches, except quiet rules (pass, nolog, no setvar)
//     whose only effects steer which rules or targets Coraza evaluates next:
//     skipping those only makes the gate evaluate more, and their target
//     removals (ctl:ruleRemoveTarget*) are applied as Coraza would.
//
// Speed comes from work shared between rules and requests:
//
//   - every @rx of a value is answered by one scan of an RE2 set
//     (go-re2, RE2's automaton) holding every pattern: the text set; the
//     patterns of chains that decode to arbitrary bytes (base64Decode...) in
//     a small set of their own; byte patterns in Latin-1 mode, as
//     binaryregexp reads them. Invalid UTF-8 is scanned as Go's regexp reads
//     it (U+FFFD per byte); patterns with Unicode classes are answered by
//     Go's regexp alone;
//   - a value that holds none of the required literals of a set's
//     patterns (regexp/syntax analysis, literals.go; the decoding and @pm
//     sets, whose every pattern needs one) is answered "no match" without
//     a scan or a memo lookup; literals are ASCII, so non-ASCII bytes
//     (text in other scripts, base64-decoded binary) never hold one,
//     except the two runes that fold to ASCII letters (Kelvin sign, long s);
//   - a value made only of digits, hex digits or word characters skips
//     the sets none of whose patterns can match a string over that
//     alphabet (regexp/syntax analysis; alphabet.go), and is answered by
//     Go's regexp when one or two patterns might;
//   - a chain head that reads only request values and a fixed argument
//     ("static") depends on the value alone, not on the target it came
//     from: one memo keyed by value remembers which heads (of both
//     phases) were evaluated on it and which match, across requests,
//     targets and phases, so a value costs one lookup per request (header
//     values and constant parameters nothing more; a value of phase 1 is
//     known in phase 2 without a lookup), and a head is evaluated at most
//     once on it; the @rx heads of a target are grouped by transformation chain
//     and set, one transformation and one set scan answering a group;
//   - chains whose result depends only on their targets' values ("pure")
//     are remembered by those values;
//   - a Request carries the values that cannot change between phase 1 and
//     phase 2 (headers, cookies, URI, query arguments).
//
// The package's tests and agent/waf's replay the CRS regression corpus and
// the libinjection corpus through engines with and without the gate and
// require identical matches; FuzzGate does the same with arbitrary requests.
package gate
