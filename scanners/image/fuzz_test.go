package image

import (
	"flag"
	"testing"
)

// fuzzMinimizeTime is how long a fuzz run of this package spends
// minimizing each new interesting input, unless -fuzzminimizetime is
// given. Go's default is 60 s, with up to len(input)² runs of the
// target: layers and gzip streams of a few KiB, whose runs take 0.1 ms
// or more, kept both workers minimizing for most of a 45 s run (5 execs
// in 45 s for FuzzPgunzip).
const fuzzMinimizeTime = "2s"

// boundMinimize sets -fuzzminimizetime to fuzzMinimizeTime when it was
// not given. It is read when f.Fuzz starts the fuzzing, so a fuzz target
// calls it first.
func boundMinimize(f *testing.F) {
	given := false
	flag.Visit(func(fl *flag.Flag) { given = given || fl.Name == "test.fuzzminimizetime" })
	if given {
		return
	}
	if err := flag.Set("test.fuzzminimizetime", fuzzMinimizeTime); err != nil {
		f.Fatal(err)
	}
}
