package image

import (
	"errors"
	"io"
	"sync"
)

// Read-ahead of an inflated layer: one goroutine inflates into a few
// buffers while the caller parses the tar stream and runs the analyzers,
// so a cold scan uses a second core for what is otherwise one sequential
// stream (inflating is ~75% of a cold scan's CPU).
//
// Buffers are made only as the reader falls behind (at most
// readaheadBuffers): while it parses a large file the inflater goes on
// instead of waiting, and a small layer or a fast reader costs a buffer
// or two.
const (
	readaheadBuffers = 16
	readaheadSize    = 512 << 10
)

// errReadaheadClosed is returned by Read after Close.
var errReadaheadClosed = errors.New("read of a closed layer stream")

type chunk struct {
	data []byte // the filled part of buf
	buf  []byte
	err  error // after data
}

// readahead reads src in a goroutine, at most readaheadBuffers buffers
// ahead of its reader. Close stops the goroutine and waits for it, so that
// the caller may read what is under src afterwards; it then closes closer.
type readahead struct {
	src    io.Reader
	closer io.Closer
	filled chan chunk
	free   chan []byte
	done   chan struct{}
	exited chan struct{}
	once   sync.Once
	made   int // buffers made so far (run's alone)

	cur      []byte
	curBuf   []byte
	err      error
	closed   bool
	closeErr error
}

func newReadahead(src io.Reader, closer io.Closer) *readahead {
	ra := &readahead{
		src: src, closer: closer,
		filled: make(chan chunk, readaheadBuffers),
		free:   make(chan []byte, readaheadBuffers),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go ra.run()
	return ra
}

func (ra *readahead) run() {
	defer close(ra.exited)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		default:
			if ra.made < readaheadBuffers {
				ra.made++
				buf = make([]byte, readaheadSize)
				break
			}
			select {
			case buf = <-ra.free:
			case <-ra.done:
				return
			}
		}
		n := 0
		var err error
		for n < len(buf) && err == nil {
			var m int
			m, err = ra.src.Read(buf[n:])
			n += m
		}
		select {
		case ra.filled <- chunk{data: buf[:n], buf: buf, err: err}:
		case <-ra.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (ra *readahead) Read(p []byte) (int, error) {
	if ra.closed {
		return 0, errReadaheadClosed
	}
	for len(ra.cur) == 0 {
		if ra.curBuf != nil {
			// free holds every buffer at most: this never blocks.
			ra.free <- ra.curBuf
			ra.curBuf = nil
		}
		if ra.err != nil {
			return 0, ra.err
		}
		c := <-ra.filled
		ra.cur, ra.curBuf, ra.err = c.data, c.buf, c.err
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the read-ahead (waiting for a read in progress to return)
// and closes the decompressor.
// A second Close returns the first one's result.
func (ra *readahead) Close() error {
	if ra.closed {
		return ra.closeErr
	}
	ra.once.Do(func() { close(ra.done) })
	<-ra.exited
	ra.closed = true
	if ra.closer != nil {
		ra.closeErr = ra.closer.Close()
	}
	return ra.closeErr
}
