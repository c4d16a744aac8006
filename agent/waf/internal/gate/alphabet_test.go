package gate

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// randomOver returns n random strings over alphabet k, of lengths 0-40.
func randomOver(k, n int, rng *rand.Rand) []string {
	var chars []byte
	for c, ok := range alphabets[k] {
		if ok {
			chars = append(chars, byte(c))
		}
	}
	out := make([]string, n)
	for i := range out {
		b := make([]byte, rng.IntN(41))
		for j := range b {
			b[j] = chars[rng.IntN(len(chars))]
		}
		out[i] = string(b)
	}
	return out
}

// TestAlphabetPrefilter: a pattern the analysis says cannot match over an
// alphabet matches no value over it (random values, and values that are
// alphabet-only words of the rules' own vocabulary); and the gate's answer
// for values over every alphabet (answered by the candidates alone, without
// a set scan) is Coraza's for every pattern (checkSets).
func TestAlphabetPrefilter(t *testing.T) {
	p := compiledCRS(t)
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"", "0", "1", "42", "select", "union", "ls", "id", "cat", "etc", "passwd", "script", "alert",
		"or", "and", "exec", "system", "eval", "bin", "sh", "cmd", "dir", "php", "java", "deadbeef", "0x41414141",
		"SELECT", "UNION", "OR1", "etc/passwd", "bin/sh", "../", "..", "a.b-c_d", "index.php", "web.config", "x/.git"}
	answered := make([]int, len(alphabets))
	for k := range alphabets {
		vals := append(randomOver(k, 300, rng), words...)
		for kind := range nSetKinds {
			ps := &p.sets[kind]
			for i, pat := range ps.pats {
				if mayMatchOver(pat.expr, &alphabets[k]) || pat.pm {
					continue
				}
				for _, v := range vals {
					if alphabetOf(v) >= 0 && alphabetOf(v) <= k && pat.match(v) {
						t.Errorf("set %s pattern %d %q matches %q over alphabet %d, said impossible", kindName(kind), i, pat.expr, v, k)
					}
				}
			}
			if ps.alpha != nil && ps.alpha[k] != nil {
				answered[k]++
			}
		}
		for _, v := range vals {
			if alphabetOf(v) == k {
				checkSets(t, p, v)
			}
		}
	}
	t.Logf("sets answered by candidates, per alphabet: %v (of %d kinds)", answered, nSetKinds)
	if answered[0] < 2 || answered[1] < 2 {
		t.Errorf("no set answers digits or hex values by candidates: the prefilter does nothing")
	}
}

func BenchmarkScanAlphabet(b *testing.B) {
	p := compiledCRS(b)
	ps := &p.sets[setText]
	for _, tc := range []struct {
		name  string
		value func(n int) string
	}{
		{"session", func(n int) string { return fmt.Sprintf("%016x%016x", n*0x9e3779b9, n) }},
		{"number", func(n int) string { return fmt.Sprint(n * 7919) }},
		{"word", func(n int) string { return fmt.Sprintf("garden%dchair", n) }},
	} {
		for _, alpha := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/candidates=%v", tc.name, alpha), func(b *testing.B) {
				saved := ps.alpha
				if !alpha {
					ps.alpha = nil
				}
				defer func() { ps.alpha = saved }()
				sc := p.scratch.Get().(*scratch)
				defer sc.release()
				n := 0
				for b.Loop() {
					n++
					sc.scan(ps, tc.value(n)) // a new value each time: memo misses
				}
			})
		}
	}
}
