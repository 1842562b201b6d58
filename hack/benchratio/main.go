// Command benchratio reads `go test -bench` output on stdin, passes it
// through, and then reports every sub-benchmark as a ratio to the first
// sub-benchmark of its family (the baseline measured in the same run), using
// the median of repeated runs (-count).
//
//	go test -bench . -count 5 ./... | go run ./hack/benchratio
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

type sample struct {
	ns, allocs []float64
}

func main() {
	var order []string
	samples := map[string]*sample{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Println(line)
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i] // drop the GOMAXPROCS suffix
		}
		s := samples[name]
		if s == nil {
			s = &sample{}
			samples[name] = s
			order = append(order, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				s.ns = append(s.ns, v)
			case "allocs/op":
				s.allocs = append(s.allocs, v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
	baseline := map[string]string{} // family -> first member
	fmt.Println()
	fmt.Printf("%-55s %14s %12s %10s\n", "benchmark (median)", "ns/op", "allocs/op", "vs base")
	for _, name := range order {
		family := name
		if i := strings.Index(name, "/"); i > 0 {
			family = name[:i]
		}
		if _, ok := baseline[family]; !ok {
			baseline[family] = name
		}
		s, base := samples[name], samples[baseline[family]]
		ratio := "baseline"
		if baseline[family] != name && median(base.ns) > 0 {
			ratio = fmt.Sprintf("%.2fx", median(s.ns)/median(base.ns))
		}
		fmt.Printf("%-55s %14.0f %12.0f %10s\n", name, median(s.ns), median(s.allocs), ratio)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}
