package vulndb

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress counts bytes read through it and draws a one-line bar on w.
type progress struct {
	r     io.Reader
	w     io.Writer
	total int64
	done  int64
	last  time.Time
}

func newProgress(r io.Reader, total int64, w io.Writer) io.Reader {
	if w == nil {
		return r
	}
	return &progress{r: r, w: w, total: total}
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if err != nil || time.Since(p.last) > 200*time.Millisecond {
		p.last = time.Now()
		p.draw(err != nil)
	}
	return n, err
}

func (p *progress) draw(final bool) {
	const width = 30
	frac := 0.0
	if p.total > 0 {
		frac = float64(p.done) / float64(p.total)
	}
	if frac > 1 {
		frac = 1
	}
	fill := int(frac * width)
	end := "\r"
	if final {
		end = "\n"
	}
	fmt.Fprintf(p.w, "vulnerability DB [%s%s] %6.1f / %.1f MiB %3.0f%%%s",
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		float64(p.done)/(1<<20), float64(p.total)/(1<<20), frac*100, end)
}
