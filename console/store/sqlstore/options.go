package sqlstore

import "fmt"

// Bounds of a SQLite store's connections (WithSQLiteConns).
const (
	DefaultSQLiteConns = 8
	MaxSQLiteConns     = 64
)

// DefaultLoginFailureRows is how many login-failure counts a store keeps at
// most (WithLoginFailureRows). A row is a key of 34 bytes and two integers,
// under 100 bytes with its index entries, so 100,000 rows are about 10 MB
// of disk; what the bound is for is the work: the rows past it are evicted
// by an index walk, and the count that tells the store is full reads them
// all (a few milliseconds at 100,000, once per new key only). Sign-ins by
// people make a few hundred keys in a window (10 minutes); 100,000 is what
// an attacker trying new addresses and names makes in a window, at a
// hundred or so attempts a second.
const DefaultLoginFailureRows = 100_000

// Option tunes a store as it is opened.
type Option func(*options) error

type options struct {
	sqliteConns      int
	loginFailureRows int
}

// WithSQLiteConns bounds the connections a SQLite store opens, all kept
// open once opened (1 to MaxSQLiteConns; default DefaultSQLiteConns).
// PostgreSQL stores ignore it.
func WithSQLiteConns(n int) Option {
	return func(o *options) error {
		if n < 1 || n > MaxSQLiteConns {
			return fmt.Errorf("SQLite connections %d: give 1 to %d", n, MaxSQLiteConns)
		}
		o.sqliteConns = n
		return nil
	}
}

// WithLoginFailureRows bounds the login-failure counts the store keeps
// (at least 1; default DefaultLoginFailureRows). See CountFailure for what
// is evicted when full.
func WithLoginFailureRows(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("login failure rows %d: give at least 1", n)
		}
		o.loginFailureRows = n
		return nil
	}
}

func applyOptions(opts []Option) (options, error) {
	o := options{sqliteConns: sqliteConns, loginFailureRows: DefaultLoginFailureRows}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return options{}, err
		}
	}
	return o, nil
}
