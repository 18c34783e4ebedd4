package experiment

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// MeanSD returns the mean and the sample standard deviation (n-1 in the denominator) of xs: NaN for a mean of no
// values and for the spread of fewer than two.
func MeanSD(xs []float64) (mean, sd float64) {
	n := float64(len(xs))
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range xs {
		mean += x
	}
	mean /= n
	if n < 2 {
		return mean, math.NaN()
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / (n - 1))
}

// Welch is the result of Welch's two-sample t-test.
type Welch struct {
	Diff float64 // mean(a) - mean(b)
	T    float64 // NaN when undefined (see Note)
	DF   float64 // Welch–Satterthwaite degrees of freedom
	P    float64 // two-sided
	Note string  // why T and P are undefined, when they are
}

// WelchTest compares the means of a and b without assuming equal variances: t = (mean a - mean b) / sqrt(sa²/na +
// sb²/nb), with the Welch–Satterthwaite degrees of freedom (sa²/na + sb²/nb)² / ((sa²/na)²/(na-1) + (sb²/nb)²/(nb-1)),
// and a two-sided p-value from Student's t distribution. With fewer than two values in a group, or no spread in
// either, t is undefined: T, DF and P are NaN and Note says why (Diff is still given when both means are).
func WelchTest(a, b []float64) Welch {
	ma, sa := MeanSD(a)
	mb, sb := MeanSD(b)
	w := Welch{Diff: ma - mb, T: math.NaN(), DF: math.NaN(), P: math.NaN()}
	na, nb := float64(len(a)), float64(len(b))
	switch {
	case len(a) < 2 || len(b) < 2:
		w.Note = "fewer than 2 values in a group"
		return w
	case sa == 0 && sb == 0:
		w.Note = "no spread within either group"
		return w
	}
	va, vb := sa*sa/na, sb*sb/nb
	se := math.Sqrt(va + vb)
	w.T = w.Diff / se
	w.DF = (va + vb) * (va + vb) / (va*va/(na-1) + vb*vb/(nb-1))
	w.P = twoSidedP(w.T, w.DF)
	return w
}

// twoSidedP is P(|T| >= |t|) for Student's t distribution with df degrees of freedom.
func twoSidedP(t, df float64) float64 {
	return 2 * distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Survival(math.Abs(t))
}

// Paired is the result of a paired t-test: the arms' values matched by seed.
type Paired struct {
	N    int     // pairs
	Diff float64 // mean of the differences a - b
	T    float64 // NaN when undefined (see Note)
	DF   float64 // N - 1
	P    float64 // two-sided
	Note string  // why T and P are undefined, when they are
}

// PairedTest tests whether the mean of the differences d = a[i] - b[i] is zero: t = mean(d) / (sd(d) / sqrt(n)) on
// n - 1 degrees of freedom, two-sided (a one-sample t-test of the differences). a and b must be the same length,
// a[i] and b[i] one pair. With fewer than two pairs, or differences without spread (equal to 1e-9 relative), t is undefined: T, DF and P
// are NaN and Note says why (Diff is still given when there is a pair).
func PairedTest(a, b []float64) Paired {
	if len(a) != len(b) {
		panic("experiment: PairedTest of unequal lengths")
	}
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	md, sd := MeanSD(d)
	p := Paired{N: len(d), Diff: md, T: math.NaN(), DF: math.NaN(), P: math.NaN()}
	switch {
	case len(d) < 2:
		p.Note = "fewer than 2 pairs"
		return p
	case sd <= 1e-9*math.Abs(md): // equal up to rounding (0.5-0.3 and 0.7-0.5 differ in the last bit)
		p.Note = "no spread in the paired differences"
		return p
	}
	p.T = md / (sd / math.Sqrt(float64(len(d))))
	p.DF = float64(len(d) - 1)
	p.P = twoSidedP(p.T, p.DF)
	return p
}
