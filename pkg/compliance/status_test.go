package compliance

import "testing"

func TestDecide_AppliesTheDocumentedRuleInOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		counts Counts
		want   Status
	}{
		{"no evidence", Counts{}, StatusNotAssessed},
		{"information only", Counts{Info: 4}, StatusNotAssessed},
		{"passing only", Counts{Pass: 3}, StatusSatisfied},
		{"passing and information", Counts{Pass: 1, Info: 5}, StatusSatisfied},
		{"a warning besides passes", Counts{Pass: 5, Warn: 1}, StatusPartially},
		{"warnings only", Counts{Warn: 2}, StatusPartially},
		{"a failure besides passes", Counts{Pass: 9, Fail: 1}, StatusPartially},
		{"failures only", Counts{Fail: 2}, StatusNotSatisfied},
		{"failures and warnings, nothing passing", Counts{Fail: 1, Warn: 3}, StatusNotSatisfied},
		{"a critical failure outweighs passes", Counts{Pass: 20, Fail: 1, CriticalFail: 1}, StatusNotSatisfied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.counts); got != tc.want {
				t.Errorf("Decide(%+v) = %s, want %s", tc.counts, got, tc.want)
			}
		})
	}
}

func TestCounts_Add_CountsErrorsAsWarningsAndSkipsAsInformation(t *testing.T) {
	var c Counts
	for _, r := range []Result{ResultPass, ResultFail, ResultWarn, ResultError, ResultSkip, ResultInfo} {
		c.Add(&Evidence{Result: r, Severity: SeverityCritical})
	}
	want := Counts{Pass: 1, Fail: 1, Warn: 2, Info: 2, CriticalFail: 1}
	if c != want {
		t.Errorf("counts = %+v, want %+v", c, want)
	}
}
