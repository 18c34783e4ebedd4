package experiment

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/atomicfile"
)

// Files of the report directory.
const (
	ReportMarkdown = "experiment.md"
	ReportJSON     = "experiment.json"
	ReportPlot     = "experiment.png"
)

// Stat is one metric of one arm at one stage over the arm's finished runs.
type Stat struct {
	Arm    string       `json:"arm"`
	Stage  string       `json:"stage"`
	Metric string       `json:"metric"`
	N      int          `json:"n"`
	Mean   rundir.Float `json:"mean"` // null when N is 0
	SD     rundir.Float `json:"sd"`   // sample standard deviation; null when N < 2
	Values []SeedValue  `json:"values"`
}

// SeedValue is one run's value of a metric.
type SeedValue struct {
	Seed  int64   `json:"seed"`
	Value float64 `json:"value"`
}

// Comparison tests a metric's difference between two arms at a stage: a paired t-test when both arms have
// finished runs of the same seeds (at least two), else Welch's t-test.
type Comparison struct {
	Metric string       `json:"metric"`
	Stage  string       `json:"stage"`
	A      string       `json:"a"`
	B      string       `json:"b"`
	NA     int          `json:"n_a"`
	NB     int          `json:"n_b"`
	MeanA  rundir.Float `json:"mean_a"`
	MeanB  rundir.Float `json:"mean_b"`
	Diff   rundir.Float `json:"difference"` // mean A - mean B
	T      rundir.Float `json:"t"`
	DF     rundir.Float `json:"df"`
	P      rundir.Float `json:"p"`
	Note   string       `json:"note,omitempty"` // why t and p are null
	Test   string       `json:"test"`           // TestPaired or TestWelch: what T, DF and P are of
	Pairs  int          `json:"pairs"`          // seeds both arms have a finished run of
	WelchP rundir.Float `json:"p_welch"`        // Welch's p as well, for reference
}

// The tests a Comparison makes.
const (
	TestPaired = "paired t"
	TestWelch  = "Welch t"
)

// EffectResult is the comparison the experiment file names in [effect].
type EffectResult struct {
	Comparison
	SDA  rundir.Float `json:"sd_a"`
	SDB  rundir.Float `json:"sd_b"`
	Line string       `json:"line"` // "effect: ...", the command's last line
}

// Report is an experiment's results, as written to experiment.json.
type Report struct {
	Name       string        `json:"name"`
	Config     string        `json:"config"`
	Base       string        `json:"base"`
	OutDir     string        `json:"out_dir"`
	Probes     string        `json:"probes,omitempty"`
	Seeds      []int64       `json:"seeds"`
	Arms       []string      `json:"arms"`
	Stages     []string      `json:"stages"`
	Runs       []RunResult   `json:"runs"`
	Unfinished []string      `json:"unfinished"` // runs not finished, left out of the statistics
	Stats      []Stat        `json:"stats"`
	PlotMetric string        `json:"plot_metric,omitempty"`
	Effect     *EffectResult `json:"effect,omitempty"`
	// Comparisons are every pair of arms, every metric, at every stage both arms have.
	Comparisons []Comparison `json:"comparisons"`
}

// BuildReport computes the statistics of the results of an experiment's runs: finished runs only.
func BuildReport(c *Config, results []RunResult) *Report {
	rep := &Report{Name: c.Name, Config: c.Path, Base: c.Base, OutDir: c.OutDir, Probes: c.Probes.File, Seeds: c.Seeds,
		Arms: c.armNames(), Stages: c.Stages, Runs: results, Unfinished: []string{}}
	for _, r := range results {
		if r.State != Finished {
			rep.Unfinished = append(rep.Unfinished, fmt.Sprintf("%s/%s (%s", r.Arm, seedDir(r.Seed), r.State)+stagesDone(r)+")")
		}
	}
	metrics := metricNames(results)
	values := func(arm, stage, metric string) []SeedValue {
		var out []SeedValue
		for _, r := range results {
			if v, ok := r.Metrics[stage][metric]; ok && r.Arm == arm && r.State == Finished {
				out = append(out, SeedValue{r.Seed, v})
			}
		}
		return out
	}
	for _, a := range c.Arms {
		for _, stage := range c.armStages(a) {
			for _, m := range metrics {
				vs := values(a.Name, stage, m)
				if len(vs) == 0 {
					continue
				}
				mean, sd := MeanSD(plain(vs))
				rep.Stats = append(rep.Stats, Stat{Arm: a.Name, Stage: stage, Metric: m, N: len(vs), Mean: rundir.Float(mean),
					SD: rundir.Float(sd), Values: vs})
			}
		}
	}
	compare := func(metric, stage, a, b string) Comparison {
		sa, sb := values(a, stage, metric), values(b, stage, metric)
		va, vb := plain(sa), plain(sb)
		ma, _ := MeanSD(va)
		mb, _ := MeanSD(vb)
		w := WelchTest(va, vb)
		cmp := Comparison{Metric: metric, Stage: stage, A: a, B: b, NA: len(va), NB: len(vb), MeanA: rundir.Float(ma),
			MeanB: rundir.Float(mb), Diff: rundir.Float(w.Diff), T: rundir.Float(w.T), DF: rundir.Float(w.DF), P: rundir.Float(w.P),
			Note: w.Note, Test: TestWelch, WelchP: rundir.Float(w.P)}
		pa, pb := pairs(sa, sb)
		cmp.Pairs = len(pa)
		if len(pa) >= 2 && len(pa) == len(va) && len(pa) == len(vb) {
			pt := PairedTest(pa, pb)
			cmp.Test, cmp.T, cmp.DF, cmp.P, cmp.Note = TestPaired, rundir.Float(pt.T), rundir.Float(pt.DF), rundir.Float(pt.P), pt.Note
		}
		return cmp
	}
	for i, a := range c.Arms {
		for _, b := range c.Arms[i+1:] {
			for _, stage := range c.armStages(a) {
				if !slices.Contains(c.armStages(b), stage) {
					continue
				}
				for _, m := range metrics {
					if cmp := compare(m, stage, a.Name, b.Name); cmp.NA+cmp.NB > 0 {
						rep.Comparisons = append(rep.Comparisons, cmp)
					}
				}
			}
		}
	}
	if e := c.Effect; e != nil {
		cmp := compare(e.Metric, e.Stage, e.A, e.B)
		_, sda := MeanSD(plain(values(e.A, e.Stage, e.Metric)))
		_, sdb := MeanSD(plain(values(e.B, e.Stage, e.Metric)))
		rep.Effect = &EffectResult{Comparison: cmp, SDA: rundir.Float(sda), SDB: rundir.Float(sdb)}
		rep.Effect.Line = fmt.Sprintf("effect: %s %s %s vs %s %s, difference %s, p = %s", e.Metric, e.A, meanSD(cmp.MeanA, sda),
			e.B, meanSD(cmp.MeanB, sdb), f3(float64(cmp.Diff)), formatP(float64(cmp.P)))
	}
	rep.PlotMetric = plotMetric(c, metrics)
	return rep
}

// TestSays names the test whose p the comparison gives: "paired t over 3 seeds (Welch's p = 0.12)" or "Welch t".
func (c Comparison) TestSays() string {
	if c.Test == TestPaired {
		return fmt.Sprintf("%s over %d seeds (Welch's p = %s)", c.Test, c.Pairs, formatP(float64(c.WelchP)))
	}
	return c.Test
}

// pairs returns the values of a and b of the seeds both have, in the order of a.
func pairs(a, b []SeedValue) (pa, pb []float64) {
	for _, x := range a {
		for _, y := range b {
			if x.Seed == y.Seed {
				pa, pb = append(pa, x.Value), append(pb, y.Value)
			}
		}
	}
	return pa, pb
}

func stagesDone(r RunResult) string {
	if len(r.Done) == 0 {
		return ""
	}
	return ", done: " + strings.Join(r.Done, ", ")
}

func plain(vs []SeedValue) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = v.Value
	}
	return out
}

// metricNames lists the metrics any run has: the probes' by value label, then multiple choice, then the
// held-out loss.
func metricNames(results []RunResult) []string {
	seen := map[string]bool{}
	for _, r := range results {
		for _, ms := range r.Metrics {
			for m := range ms {
				seen[m] = true
			}
		}
	}
	rank := func(m string) (int, string, int) {
		if v, k, ok := probeMetric(m); ok {
			return 0, v, slices.Index(probeMetrics, k)
		}
		return 1 + slices.Index([]string{MetricMC, MetricMCNorm, MetricMCMargin, MetricEvalLoss}, m), m, 0
	}
	var out []string
	for m := range seen {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		a0, a1, a2 := rank(out[i])
		b0, b1, b2 := rank(out[j])
		if a0 != b0 {
			return a0 < b0
		}
		if a1 != b1 {
			return a1 < b1
		}
		return a2 < b2
	})
	return out
}

// plotMetric is the metric plotted: the effect's when it is a probe share, else the first value's probe share,
// else the effect's metric, else the held-out loss.
func plotMetric(c *Config, metrics []string) string {
	if e := c.Effect; e != nil {
		if _, k, ok := probeMetric(e.Metric); ok && k == "share" {
			return e.Metric
		}
	}
	for _, m := range metrics {
		if _, k, ok := probeMetric(m); ok && k == "share" {
			return m
		}
	}
	if c.Effect != nil {
		return c.Effect.Metric
	}
	if slices.Contains(metrics, MetricEvalLoss) {
		return MetricEvalLoss
	}
	return ""
}

// f3 formats a number with 3 decimals, or "n/a".
func f3(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// meanSD is "mean±sd" with 3 decimals, "n/a" for what is undefined.
func meanSD(mean rundir.Float, sd float64) string {
	if math.IsNaN(float64(mean)) {
		return "n/a"
	}
	return f3(float64(mean)) + "±" + f3(sd)
}

// formatP writes a p-value with 2 significant digits ("0.050", "0.0031", "4.2e-07"), or "n/a".
func formatP(p float64) string {
	switch {
	case math.IsNaN(p):
		return "n/a"
	case p <= 0:
		return "0"
	case p < 1e-4:
		return strconv.FormatFloat(p, 'e', 1, 64)
	}
	q, _ := strconv.ParseFloat(strconv.FormatFloat(p, 'e', 1, 64), 64) // rounded to 2 significant digits
	return strconv.FormatFloat(q, 'f', max(1, 1-int(math.Floor(math.Log10(q)))), 64)
}

// WriteReport writes dir/experiment.md, dir/experiment.json and, when there is a metric to plot, dir/experiment.png.
func WriteReport(rep *Report, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	plot := ""
	if rep.PlotMetric != "" {
		b, err := PlotPNG(rep)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, ReportPlot), b); err != nil {
			return err
		}
		plot = ReportPlot
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md, plot); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ReportMarkdown), md.Bytes()); err != nil {
		return err
	}
	return rundir.WriteJSON(filepath.Join(dir, ReportJSON), rep)
}

// Markdown writes the report; plot, when not empty, is the image to show.
func (rep *Report) Markdown(w io.Writer, plot string) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	finished := len(rep.Runs) - len(rep.Unfinished)
	p("# Experiment %s\n\n", rep.Name)
	p("- experiment: `%s`\n- base config: `%s`\n- run directories: `%s/<arm>/seed-<seed>`\n", rep.Config, rep.Base, rep.OutDir)
	if rep.Probes != "" {
		p("- probes: `%s`\n", rep.Probes)
	}
	p("- %d arms × %d seeds = %d runs, %d finished\n", len(rep.Arms), len(rep.Seeds), len(rep.Runs), finished)
	if rep.Effect != nil {
		p("\n```\n%s\n```\n\n(at stage %s, %d vs %d runs; %s)\n", rep.Effect.Line, rep.Effect.Stage, rep.Effect.NA, rep.Effect.NB,
			rep.Effect.TestSays())
	}
	if len(rep.Unfinished) > 0 {
		p("\n**Not finished, left out of every figure below:** %s.\n", strings.Join(rep.Unfinished, "; "))
	}
	if plot != "" {
		p("\n![%s after each stage, per arm](%s)\n\n", rep.PlotMetric, plot)
		p("The plot: `%s` after each stage, one panel per arm; a dot per seed, the line through the means.\n", rep.PlotMetric)
	}

	p("\n## Metrics\n\n")
	p("Over each arm's finished runs: n, the mean, the sample standard deviation (n − 1; n/a for fewer than 2) and each seed's value. ")
	p("`probe.<value>.share` is the fraction of the probe items offering that value whose most likely choice (by ")
	p("log-probability of the choice and end of turn) expresses it; `share_norm` ranks choices by log-probability per ")
	p("token; `margin` is the mean of the best log-probability among the value's choices minus the best among the ")
	p("others (nats). `eval_loss` is the stage's final held-out loss; `mc_*` its eval_mc results.\n")
	stats := map[string][]Stat{}
	var order []string
	for _, s := range rep.Stats {
		if _, ok := stats[s.Metric]; !ok {
			order = append(order, s.Metric)
		}
		stats[s.Metric] = append(stats[s.Metric], s)
	}
	for _, m := range order {
		p("\n### %s\n\n", m)
		head := []string{"stage", "arm", "n", "mean", "sd"}
		for _, s := range rep.Seeds {
			head = append(head, "seed "+strconv.FormatInt(s, 10))
		}
		row(bw, head)
		row(bw, slices.Repeat([]string{"---"}, len(head)))
		for _, stage := range rep.Stages {
			for _, s := range stats[m] {
				if s.Stage != stage {
					continue
				}
				cells := []string{stage, s.Arm, strconv.Itoa(s.N), f3(float64(s.Mean)), f3(float64(s.SD))}
				for _, seed := range rep.Seeds {
					v := "—"
					for _, sv := range s.Values {
						if sv.Seed == seed {
							v = f3(sv.Value)
						}
					}
					cells = append(cells, v)
				}
				row(bw, cells)
			}
		}
	}

	p("\n## Differences between arms\n\n")
	n := len(rep.Seeds)
	p("Each pair of arms, each metric, at each stage both arms have: the difference of the means (A − B) and a ")
	p("two-sided t-test. When both arms have finished runs of the same seeds (at least 2), the test is **paired**: ")
	p("a one-sample t-test of the per-seed differences (n − 1 degrees of freedom). The seed of a run sets its ")
	p("initialisation and data order, so the runs of one seed share everything before the arms differ (a stage that ")
	p("every arm runs alike, such as a pretraining stage, is the same model in each), and what a seed does to both ")
	p("arms cancels in the difference; with a handful of seeds that seed-to-seed spread would otherwise swamp the ")
	p("difference between the arms. Otherwise (a run missing or failed in one arm) the test is **Welch's** two-sample ")
	p("t-test (Welch–Satterthwaite degrees of freedom), which does not assume equal variances; its p is given for every ")
	p("comparison, for reference. Both assume a metric roughly normal across seeds. A permutation test assumes less, ")
	p("but cannot resolve so few runs: ")
	if n >= 2 {
		splits := binomial(2*n, n)
		p("with %d seeds there are only 2^%d = %d sign flips of the paired differences and C(%d, %d) = %.0f splits of the ", n, n, 1<<n, 2*n, n, splits)
		p("%d runs, so its two-sided p-value could never be below %s (paired) or %s (unpaired), however large the ", 2*n, formatP(2/float64(int(1)<<n)), formatP(2/splits))
		p("difference. ")
	} else {
		p("with one seed per arm there is nothing to permute. ")
	}
	p("The p-values are not corrected for the number of comparisons in this table: the `[effect]` comparison is the ")
	p("one the experiment names in advance. t and p are n/a when there are fewer than 2 runs (or pairs) or no spread.\n\n")
	if len(rep.Comparisons) == 0 {
		p("No comparisons: fewer than two arms with results.\n")
	} else {
		head := []string{"metric", "stage", "A", "B", "n A", "n B", "mean A", "mean B", "A − B", "test", "t", "df", "p", "Welch p"}
		row(bw, head)
		row(bw, slices.Repeat([]string{"---"}, len(head)))
		for _, c := range rep.Comparisons {
			pv := formatP(float64(c.P))
			if c.Note != "" {
				pv += " (" + c.Note + ")"
			}
			row(bw, []string{c.Metric, c.Stage, c.A, c.B, strconv.Itoa(c.NA), strconv.Itoa(c.NB), f3(float64(c.MeanA)), f3(float64(c.MeanB)),
				f3(float64(c.Diff)), c.Test, decimals(float64(c.T), 2), decimals(float64(c.DF), 1), pv, formatP(float64(c.WelchP))})
		}
	}

	p("\n## Runs\n\n")
	row(bw, []string{"arm", "seed", "state", "stages done", "directory"})
	row(bw, []string{"---", "---", "---", "---", "---"})
	for _, r := range rep.Runs {
		row(bw, []string{r.Arm, strconv.FormatInt(r.Seed, 10), r.State, strings.Join(r.Done, ", "), "`" + r.Dir + "`"})
	}
	return bw.Flush()
}

func decimals(v float64, dec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

func binomial(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}

// row writes a Markdown table row, escaping the cells.
func row(w io.Writer, cells []string) {
	esc := make([]string, len(cells))
	for i, c := range cells {
		esc[i] = strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(c)
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(esc, " | "))
}
