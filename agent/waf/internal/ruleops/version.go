package ruleops

// CorazaVersion is the Coraza release this package was copied from. A test
// fails when go.mod requires another one: the copies must then be compared
// with the new release (and the differential tests rerun) before this
// constant moves.
const CorazaVersion = "v3.8.1"

// corazaModule is the module path of Coraza in go.mod.
const corazaModule = "github.com/corazawaf/coraza/v3"
