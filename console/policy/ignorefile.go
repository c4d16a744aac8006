package policy

import (
	"errors"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// IgnoreFileName is the ignore file the CLI looks for in the working directory.
const IgnoreFileName = ".taskguardignore"

// IgnoreFile is a repository's list of accepted findings (.taskguardignore):
//
//	ignore:
//	  - id: CVE-2023-44487
//	    package: golang.org/x/net    # optional
//	    reason: HTTP/2 is not served
//	    expires: 2026-12-31          # optional; expired entries stop applying
type IgnoreFile struct {
	Ignore []Exception `json:"ignore"`
}

// ParseIgnoreFile reads an ignore file in YAML (or JSON). Every entry needs
// an id and a reason.
func ParseIgnoreFile(data []byte) (*IgnoreFile, error) {
	var f IgnoreFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("ignore file: %w", err)
	}
	var errs []error
	checkExceptions(func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}, "ignore", f.Ignore)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ignore file: %w", err)
	}
	return &f, nil
}

// LoadIgnoreFile reads path; a missing file is not an error when optional.
func LoadIgnoreFile(path string, optional bool) (*IgnoreFile, error) {
	data, err := os.ReadFile(path)
	if optional && errors.Is(err, os.ErrNotExist) {
		return &IgnoreFile{}, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := ParseIgnoreFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// ParsePolicy reads a policy document in JSON or YAML and validates it.
func ParsePolicy(data []byte) (*Policy, error) {
	var p Policy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return &p, nil
}

// LoadPolicy reads and validates a local policy file.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}
