package suite

import (
	"fmt"
	"regexp"
	"strings"
)

// filter selects tests and cases by name with gator's --run syntax.
type filter struct {
	any       *regexp.Regexp // "REGEX": test or case name
	test, cse *regexp.Regexp // "TEST//CASE"
}

func newFilter(run string) (filter, error) {
	if run == "" {
		return filter{}, nil
	}
	parts := strings.Split(run, "//")
	compile := func(s string) (*regexp.Regexp, error) {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("%w: --run %q: %v", ErrInput, run, err)
		}
		return re, nil
	}
	switch len(parts) {
	case 1:
		re, err := compile(parts[0])
		return filter{any: re}, err
	case 2:
		t, err := compile(parts[0])
		if err != nil {
			return filter{}, err
		}
		c, err := compile(parts[1])
		return filter{test: t, cse: c}, err
	default:
		return filter{}, fmt.Errorf("%w: --run %q: use at most one \"//\"", ErrInput, run)
	}
}

// selectsTest reports whether any part of a test is selected.
func (f filter) selectsTest(t *Test) bool {
	switch {
	case f.test != nil:
		return f.test.MatchString(t.Name)
	case f.any != nil:
		if f.any.MatchString(t.Name) {
			return true
		}
		for _, c := range t.Cases {
			if f.any.MatchString(c.Name) {
				return true
			}
		}
		return false
	default:
		return true
	}
}

// selectsCase reports whether a case is selected.
func (f filter) selectsCase(testName, caseName string) bool {
	switch {
	case f.test != nil:
		return f.test.MatchString(testName) && f.cse.MatchString(caseName)
	case f.any != nil:
		return f.any.MatchString(testName) || f.any.MatchString(caseName)
	default:
		return true
	}
}
