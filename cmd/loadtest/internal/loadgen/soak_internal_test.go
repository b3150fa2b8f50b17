package loadgen

import (
	"math"
	"strings"
	"testing"
)

func series(n int, f func(i int) float64) (t, v []float64) {
	for i := range n {
		t = append(t, float64(i*10))
		v = append(v, f(i))
	}
	return t, v
}

func TestTrendOf(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		f         func(i int) float64
		tol       float64
		slack     float64
		wantOK    bool
		wantFlat  bool
		wantSlope float64 // per hour, when nonzero
	}{
		{"constant", 40, func(int) float64 { return 50_000 }, 0.1, 0, true, true, 0},
		{"saw-tooth around a level (GC cycles)", 40, func(i int) float64 { return 50_000 + float64(i%5)*2000 }, 0.1, 0, true, true, 0},
		{"steady growth: 1 unit per sample", 40, func(i int) float64 { return 100 + float64(i) }, 0.1, 0, true, false, 360},
		{"small growth within tolerance", 40, func(i int) float64 { return 1000 + float64(i) }, 0.1, 0, true, true, 360},
		{"a few goroutines more, within the absolute slack", 40, func(i int) float64 { return 20 + float64(i/10) }, 0.1, 8, true, true, 0},
		{"goroutine leak beyond the slack", 40, func(i int) float64 { return 20 + float64(i) }, 0.1, 8, true, false, 360},
		{"shrinking is flat", 40, func(i int) float64 { return 5000 - float64(i)*10 }, 0, 0, true, true, -3600},
		{"too few samples", 3, func(int) float64 { return 1 }, 0.1, 0, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, vs := series(tt.n, tt.f)
			tr, ok := trendOf(ts, vs, tt.tol, tt.slack)
			if ok != tt.wantOK {
				t.Fatalf("ok %v", ok)
			}
			if !ok {
				return
			}
			if tr.Flat != tt.wantFlat {
				t.Fatalf("flat %v: %+v", tr.Flat, tr)
			}
			if tt.wantSlope != 0 && math.Abs(tr.SlopePerHour-tt.wantSlope) > 1e-6*math.Abs(tt.wantSlope) {
				t.Fatalf("slope %v per hour, want %v", tr.SlopePerHour, tt.wantSlope)
			}
		})
	}
}

func TestSoakVerdict(t *testing.T) {
	flat := func(n int, v float64) []SoakSample {
		var out []SoakSample
		for i := range n {
			out = append(out, SoakSample{Seconds: float64(i), RSSKB: uint64(v), Goroutines: 30, FDs: 250})
		}
		return out
	}
	before := SoakSample{RSSKB: 40_000, Goroutines: 25, FDs: 220}
	tests := []struct {
		name       string
		samples    []SoakSample
		goroutines bool
		after      SoakSample
		wantFlat   bool
		want       string
	}{
		{"flat", flat(20, 50_000), true, before, true, "flat"},
		{"flat without goroutine samples", flat(20, 50_000), false, before, true, "flat"},
		{"RSS grows", func() []SoakSample {
			s := flat(20, 50_000)
			for i := range s {
				s[i].RSSKB += uint64(i) * 2000
			}
			return s
		}(), true, before, false, "RSS KB grew"},
		{"files left open after the churn", flat(20, 50_000), true, SoakSample{Goroutines: 25, FDs: 300}, false, "open files 300 after churn, 220 before"},
		{"goroutines left after the churn", flat(20, 50_000), true, SoakSample{Goroutines: 90, FDs: 220}, false, "goroutines 90 after churn"},
		{"too few samples", flat(2, 50_000), true, before, false, "too few samples"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := SoakReport{Tolerance: 0.1, Samples: tt.samples, Before: before, After: tt.after}
			rep.analyse(tt.goroutines)
			if rep.Flat != tt.wantFlat || !strings.Contains(rep.Verdict, tt.want) {
				t.Fatalf("flat %v, verdict %q; want %v, %q", rep.Flat, rep.Verdict, tt.wantFlat, tt.want)
			}
			if (rep.Goroutines != nil) != (tt.goroutines && len(tt.samples) >= 4) {
				t.Fatalf("goroutine trend %+v", rep.Goroutines)
			}
		})
	}
}

func TestParseGoroutines(t *testing.T) {
	tests := []struct {
		name, in string
		want     int
		wantErr  string
	}{
		{"client_golang exposition", "# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines 42\n# TYPE go_threads gauge\ngo_threads 7\n", 42, ""},
		{"untyped", "go_goroutines 17\n", 17, ""},
		{"scientific notation", "go_goroutines 1.5e+03\n", 1500, ""},
		{"absent", "# TYPE go_threads gauge\ngo_threads 7\n", 0, "no go_goroutines"},
		{"a counter, not a gauge", "# TYPE go_goroutines counter\ngo_goroutines 3\n", 0, "no go_goroutines"},
		{"fractional", "go_goroutines 2.5\n", 0, "not a count"},
		{"negative", "go_goroutines -1\n", 0, "not a count"},
		{"NaN", "go_goroutines NaN\n", 0, "not a count"},
		{"garbage", "<html>not metrics</html>\n", 0, "metrics:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGoroutines(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %d, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func FuzzParseGoroutines(f *testing.F) {
	f.Add("# TYPE go_goroutines gauge\ngo_goroutines 42\n")
	f.Add("go_goroutines 1e3\n")
	f.Add("go_goroutines{a=\"b\"} 3\ngo_goroutines{a=\"c\"} 4\n")
	f.Add("go_goroutines\n")
	f.Fuzz(func(t *testing.T, in string) {
		n, err := parseGoroutines(strings.NewReader(in))
		if err != nil {
			return
		}
		// A count can only come from an exposition that names the gauge.
		if n < 0 || !strings.Contains(in, "go_goroutines") {
			t.Fatalf("%d goroutines from %q", n, in)
		}
	})
}
