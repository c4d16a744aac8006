//go:build race

package waf

// raceEnabled: the race detector makes the corpus tests 5-10x slower; they
// replay a smaller sample (the race detector looks for races, not misses).
const raceEnabled = true
