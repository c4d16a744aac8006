package waf

import (
	"net/http/httptest"
	"testing"

	"github.com/taskguard/taskguard/console/policy"
)

func BenchmarkScratchInspect(b *testing.B) {
	sets := map[string][]policy.Protection{"none": nil, "all": policy.Protections}
	for _, p := range policy.Protections {
		sets[string(p)] = []policy.Protection{p}
	}
	for name, ps := range sets {
		b.Run(name, func(b *testing.B) {
			all := map[policy.Protection]policy.Effect{}
			for _, p := range ps {
				all[p] = policy.EffectPrevent
			}
			e, err := newEngine(policy.WAFRule{Name: "r", ExternalPort: 8080, AppPort: 80, Protections: all}, 1, 128<<10)
			if err != nil {
				b.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/api/items?page=2&sort=name", nil)
			r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
			r.Header.Set("Accept", "*/*")
			r.Header.Set("Accept-Encoding", "gzip")
			b.ReportAllocs()
			for b.Loop() {
				e.inspect(r, nil)
			}
		})
	}
}
