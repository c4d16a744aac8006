package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"

	"golang.org/x/crypto/bcrypt"
)

// Password length limits. bcrypt reads at most 72 bytes, so longer passwords
// are refused rather than silently cut.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// ErrInvalid marks a username, password or role that fails validation; the
// message says which and why.
var ErrInvalid = errors.New("invalid")

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// ValidateUsername accepts 1 to 64 letters, digits and ". _ @ -", starting
// with a letter or digit.
func ValidateUsername(name string) error {
	if !usernamePattern.MatchString(name) {
		return fmt.Errorf("%w username %q: use 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", ErrInvalid, name)
	}
	return nil
}

// ValidatePassword checks the length limits.
func ValidatePassword(pw string) error {
	if len(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return fmt.Errorf("%w password: it must be %d to %d bytes long", ErrInvalid, MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

// GeneratePassword returns a random 26-character password (130 bits).
func GeneratePassword() string { return rand.Text() }

// HashPassword returns the bcrypt hash of pw at cost (bcrypt.DefaultCost when 0).
func HashPassword(pw string, cost int) ([]byte, error) {
	if err := ValidatePassword(pw); err != nil {
		return nil, err
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	return bcrypt.GenerateFromPassword([]byte(pw), cost)
}

func checkPassword(hash []byte, pw string) bool {
	return bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil
}
