package experiment

import (
	"math"
	"testing"
)

func TestMeanSD(t *testing.T) {
	for _, c := range []struct {
		xs       []float64
		mean, sd float64
	}{
		// sum 40, squared deviations 9+1+1+1+0+0+4+16 = 32: sample variance 32/7
		{[]float64{2, 4, 4, 4, 5, 5, 7, 9}, 5, math.Sqrt(32.0 / 7)},
		{[]float64{0.62, 0.58}, 0.6, math.Sqrt(0.0008)},
		{[]float64{1, 1, 1}, 1, 0},
		{[]float64{3}, 3, math.NaN()},
		{nil, math.NaN(), math.NaN()},
	} {
		m, sd := MeanSD(c.xs)
		if !same(m, c.mean, 1e-12) || !same(sd, c.sd, 1e-12) {
			t.Errorf("%v: mean %v sd %v, want %v %v", c.xs, m, sd, c.mean, c.sd)
		}
	}
}

// same compares two numbers within tol, NaN equal to NaN.
func same(a, b, tol float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= tol
}

// TestTwoSidedP checks the t distribution's tail against closed forms (1 and 2 degrees of freedom: P(|T| >= t) =
// 1 - 2 atan(t)/pi and 1 - t/sqrt(2+t²)) and, for fractional degrees of freedom as Welch's test produces, against
// Simpson integration of the density written out here.
func TestTwoSidedP(t *testing.T) {
	for _, tv := range []float64{0, 0.3, 1, 2.5, 7} {
		if p, want := twoSidedP(tv, 1), 1-2*math.Atan(tv)/math.Pi; !same(p, want, 1e-9) {
			t.Errorf("t %v df 1: p %v, want %v", tv, p, want)
		}
		if p, want := twoSidedP(-tv, 2), 1-tv/math.Sqrt(2+tv*tv); !same(p, want, 1e-9) {
			t.Errorf("t %v df 2: p %v, want %v", -tv, p, want)
		}
	}
	density := func(x, df float64) float64 {
		lg1, _ := math.Lgamma((df + 1) / 2)
		lg2, _ := math.Lgamma(df / 2)
		return math.Exp(lg1-lg2-0.5*math.Log(df*math.Pi)) * math.Pow(1+x*x/df, -(df+1)/2)
	}
	for _, c := range []struct{ t, df float64 }{{2.2, 3.7}, {0.8, 5.31}, {4.1, 2.4}, {1.96, 25.02}} {
		// P(|T| >= t) = 1 - 2 * integral from 0 to t of the density
		const n = 20000
		h := c.t / n
		s := density(0, c.df) + density(c.t, c.df)
		for i := 1; i < n; i++ {
			w := 2.0
			if i%2 == 1 {
				w = 4
			}
			s += w * density(float64(i)*h, c.df)
		}
		want := 1 - 2*s*h/3
		if p := twoSidedP(c.t, c.df); !same(p, want, 1e-9) {
			t.Errorf("t %v df %v: p %v, want %v", c.t, c.df, p, want)
		}
	}
}

// TestWelchPublished: the first two examples of Wikipedia's "Welch's t-test" article (section "Examples"), whose
// results it gives rounded to the digits below: t, the Welch–Satterthwaite df and the two-sided p (what R's
// t.test(a, b) and scipy.stats.ttest_ind(a, b, equal_var=False) print). t and df were also checked with Python's
// statistics module (variance with n-1).
func TestWelchPublished(t *testing.T) {
	for i, c := range []struct {
		a, b      []float64
		t, df, p  float64
		tolT, tol float64
	}{
		{
			a: []float64{27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4},
			b: []float64{27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4},
			t: -2.46, df: 25.0, p: 0.021,
		},
		{
			a: []float64{17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8},
			b: []float64{21.5, 22.8, 21.0, 23.0, 21.6, 23.6, 22.5, 20.7, 23.4, 21.8, 20.7, 21.7, 21.5, 22.5, 23.6, 21.5, 22.5, 23.5, 21.5, 21.8},
			t: -1.57, df: 9.9, p: 0.149,
		},
	} {
		w := WelchTest(c.a, c.b)
		t.Logf("example %d: t %.4f df %.3f p %.5f", i+1, w.T, w.DF, w.P)
		if !same(w.T, c.t, 0.005) || !same(w.DF, c.df, 0.05) || !same(w.P, c.p, 0.0005) || w.Note != "" {
			t.Errorf("example %d: t %v df %v p %v (%s), want t %v df %v p %v", i+1, w.T, w.DF, w.P, w.Note, c.t, c.df, c.p)
		}
		// The test is symmetric: swapping the groups negates t and keeps df and p.
		if s := WelchTest(c.b, c.a); !same(s.T, -w.T, 1e-12) || !same(s.DF, w.DF, 1e-9) || !same(s.P, w.P, 1e-12) {
			t.Errorf("example %d swapped: %+v vs %+v", i+1, s, w)
		}
	}
}

// TestWelchSmall: three seeds against three, worked out by hand, and the degenerate cases.
func TestWelchSmall(t *testing.T) {
	// a: mean 0.6, variance ((0.02)²+0+(0.02)²)/2 = 0.0004; b: mean 0.4, variance 0.0016 (deviations 0.04, 0, -0.04).
	// se = sqrt(0.0004/3 + 0.0016/3) = sqrt(0.002/3); t = 0.2/se; df = (0.002/3)² / ((0.0004/3)²/2 + (0.0016/3)²/2)
	// = 0.000004 / (0.00000016/2 + 0.00000256/2) = 0.000004/0.00000136 = 2.9412.
	w := WelchTest([]float64{0.58, 0.60, 0.62}, []float64{0.36, 0.40, 0.44})
	wantT := 0.2 / math.Sqrt(0.002/3)
	if !same(w.Diff, 0.2, 1e-12) || !same(w.T, wantT, 1e-9) || !same(w.DF, 4.0/1.36, 1e-9) || !same(w.P, twoSidedP(wantT, 4.0/1.36), 1e-12) {
		t.Errorf("%+v, want t %v df %v", w, wantT, 4.0/1.36)
	}
	if w.P <= 0 || w.P >= 0.05 {
		t.Errorf("p %v: t = %.2f on ~3 df is significant at 0.05 but not 0", w.P, w.T)
	}
	// One group without spread: the other's variance alone, df = its n - 1.
	w = WelchTest([]float64{1, 1, 1}, []float64{-1, 0, 1})
	if !same(w.DF, 2, 1e-12) || !same(w.T, 1/math.Sqrt(1.0/3), 1e-12) {
		t.Errorf("one constant group: %+v", w)
	}
	for _, c := range []struct {
		a, b []float64
		note string
	}{
		{[]float64{1, 1, 1}, []float64{2, 2}, "no spread within either group"},
		{[]float64{1}, []float64{2, 3}, "fewer than 2 values in a group"},
		{nil, []float64{2, 3}, "fewer than 2 values in a group"},
	} {
		w := WelchTest(c.a, c.b)
		if w.Note != c.note || !math.IsNaN(w.T) || !math.IsNaN(w.P) || !math.IsNaN(w.DF) {
			t.Errorf("%v vs %v: %+v, want NaN and %q", c.a, c.b, w, c.note)
		}
	}
}

// TestPairedPublished: Student's sleep data (Cushny and Peebles; R's `sleep`), the extra hours of sleep of ten
// patients under two drugs, whose paired t-test R gives as t = -4.0621, df = 9, p-value = 0.002833, mean difference
// -1.58 (t.test(extra ~ group, data = sleep, paired = TRUE)).
func TestPairedPublished(t *testing.T) {
	a := []float64{0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0}
	b := []float64{1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4}
	p := PairedTest(a, b)
	if p.N != 10 || !same(p.Diff, -1.58, 1e-12) || !same(p.T, -4.0621, 5e-5) || p.DF != 9 || !same(p.P, 0.002833, 5e-7) {
		t.Errorf("%+v, want t -4.0621 df 9 p 0.002833", p)
	}
	// The same data unpaired: the spread between patients hides the difference.
	if w := WelchTest(a, b); w.P < 0.05 {
		t.Errorf("Welch p %v: the unpaired test should not find it", w.P)
	}
}

// TestPairedSmall: three pairs worked out by hand (2 degrees of freedom, closed-form tail) and the degenerate cases.
func TestPairedSmall(t *testing.T) {
	// d = 0.2, 0.1, 0.3: mean 0.2, sd 0.1, t = 0.2 / (0.1/sqrt 3) = 2 sqrt 3; p = 1 - t/sqrt(2+t²) = 1 - sqrt(12/14).
	p := PairedTest([]float64{0.6, 0.7, 0.9}, []float64{0.4, 0.6, 0.6})
	if !same(p.Diff, 0.2, 1e-12) || !same(p.T, 2*math.Sqrt(3), 1e-9) || p.DF != 2 || !same(p.P, 1-math.Sqrt(12.0/14), 1e-9) {
		t.Errorf("%+v", p)
	}
	for _, c := range []struct {
		a, b []float64
		note string
	}{
		{[]float64{0.5, 0.7}, []float64{0.3, 0.5}, "no spread in the paired differences"},
		{[]float64{0.5}, []float64{0.3}, "fewer than 2 pairs"},
		{nil, nil, "fewer than 2 pairs"},
	} {
		p := PairedTest(c.a, c.b)
		if p.Note != c.note || !math.IsNaN(p.T) || !math.IsNaN(p.P) || !math.IsNaN(p.DF) {
			t.Errorf("%v vs %v: %+v, want NaN and %q", c.a, c.b, p, c.note)
		}
	}
}
