package auth

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxTaskFamilyLen is the longest task family name ECS accepts.
const MaxTaskFamilyLen = 255

// ValidateTaskFamily accepts what ECS accepts as a task definition family:
// 1 to 255 ASCII letters, digits, '-' and '_'. Anything else ("../etc",
// spaces, 300 characters) is refused with ErrInvalid, so a family can be used
// as a key, in a URL or on a page without surprises.
func ValidateTaskFamily(family string) error {
	if family == "" {
		return fmt.Errorf("%w task family: it is empty; ECS families are 1 to %d letters, digits, '-' or '_'", ErrInvalid, MaxTaskFamilyLen)
	}
	if len(family) > MaxTaskFamilyLen {
		return fmt.Errorf("%w task family: %d characters, ECS allows at most %d", ErrInvalid, len(family), MaxTaskFamilyLen)
	}
	for i := 0; i < len(family); i++ {
		c := family[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			continue
		}
		return fmt.Errorf("%w task family %s: character %s at byte %d; ECS families are letters, digits, '-' and '_' only",
			ErrInvalid, strconv.Quote(family), quoteCharAt(family, i), i)
	}
	return nil
}

// quoteCharAt quotes the character that starts at byte i of s: the whole
// UTF-8 sequence when it is one ('é', not the Latin-1 reading of its first
// byte), else the lone byte as '\xNN'.
func quoteCharAt(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("'\\x%02x'", s[i])
	}
	return strconv.QuoteRune(r)
}
