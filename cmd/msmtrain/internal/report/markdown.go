package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// finalTrainWindow is how many last train steps of a stage are averaged for
// its final train loss.
const finalTrainWindow = 10

// StageStats is one row of the per-stage table.
type StageStats struct {
	Stage          string
	Steps          int     // summary.json, else the last train step
	Tokens         int64   // summary.json, else the last train line's cumulative tokens
	FinalTrainLoss float64 // mean loss of the last 10 train steps, else summary.json; NaN if unknown
	FinalEvalLoss  float64 // last eval line, else summary.json; NaN if unknown
	Seconds        float64 // summary.json; NaN if unknown
}

// Stats returns one StageStats per stage of r, in stage order.
func (r *Run) Stats() []StageStats {
	out := make([]StageStats, 0, len(r.Stages))
	for _, stage := range r.Stages {
		st := StageStats{Stage: stage, FinalTrainLoss: math.NaN(), FinalEvalLoss: math.NaN(), Seconds: math.NaN()}
		var losses []float64
		for _, s := range r.Train {
			if s.Stage != stage {
				continue
			}
			st.Steps = max(st.Steps, s.Step)
			st.Tokens = s.Tokens
			if l := float64(s.Loss); !math.IsNaN(l) {
				losses = append(losses, l)
			}
		}
		if n := len(losses); n > 0 {
			st.FinalTrainLoss = mean(losses[max(0, n-finalTrainWindow):])
		}
		for _, e := range r.Eval {
			if l := float64(e.EvalLoss); e.Stage == stage && !math.IsNaN(l) {
				st.FinalEvalLoss = l
			}
		}
		if ss := r.stageSummary(stage); ss != nil {
			if ss.Steps > 0 {
				st.Steps = ss.Steps
			}
			if ss.Tokens > 0 {
				st.Tokens = ss.Tokens
			}
			if math.IsNaN(st.FinalTrainLoss) {
				st.FinalTrainLoss = ss.FinalTrainLoss
			}
			if math.IsNaN(st.FinalEvalLoss) && ss.FinalEvalLoss != nil {
				st.FinalEvalLoss = *ss.FinalEvalLoss
			}
			if ss.Seconds > 0 {
				st.Seconds = ss.Seconds
			}
		}
		out = append(out, st)
	}
	return out
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// ConfigDiff returns the flattened config keys whose values differ between
// runs (a key missing from some run counts as different), sorted.
func ConfigDiff(runs []*Run) []string {
	if len(runs) == 0 {
		return nil
	}
	all := map[string]bool{}
	for _, r := range runs {
		for k := range r.Config {
			all[k] = true
		}
	}
	var keys []string
	for k := range all {
		v0, ok0 := runs[0].Config[k]
		for _, r := range runs[1:] {
			if v, ok := r.Config[k]; ok != ok0 || v != v0 {
				keys = append(keys, k)
				break
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// Markdown writes a Markdown report comparing runs, in the order given:
// config differences, per-stage results, final eval loss by source, and the
// eval/*.json metrics. Missing values are written as "—".
func Markdown(runs []*Run, w io.Writer) error { return markdown(runs, w, "") }

// markdown is Markdown with, when plot is not empty, an image link to it.
func markdown(runs []*Run, w io.Writer, plot string) error {
	if len(runs) == 0 {
		return errors.New("report: no runs")
	}
	if slices.Contains(runs, nil) {
		return errors.New("report: nil run")
	}
	names := displayNames(runs)
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	p("# Training report\n\n")
	for i, r := range runs {
		p("- **%s**: `%s`\n", cell(names[i]), r.Dir)
	}

	if plot != "" {
		p("\n![Loss curves](%s)\n", plot)
	}

	p("\n## Config differences\n\n")
	if len(runs) < 2 {
		p("Only one run; nothing to compare.\n")
	} else if keys := ConfigDiff(runs); len(keys) == 0 {
		p("The configs are identical.\n")
	} else {
		header(bw, append([]string{"key"}, names...))
		for _, k := range keys {
			row := []string{"`" + k + "`"}
			for _, r := range runs {
				v, ok := r.Config[k]
				if !ok {
					v = "—"
				}
				row = append(row, v)
			}
			tableRow(bw, row)
		}
	}

	p("\n## Stages\n\n")
	p("Final train loss is the mean of the last %d train steps; final eval loss is the last evaluation.\n\n", finalTrainWindow)
	header(bw, []string{"stage", "run", "steps", "tokens", "final train loss", "final eval loss", "time"})
	stats := make([]map[string]StageStats, len(runs))
	for i, r := range runs {
		stats[i] = map[string]StageStats{}
		for _, s := range r.Stats() {
			stats[i][s.Stage] = s
		}
	}
	for _, stage := range unionStages(runs) {
		for i := range runs {
			s, ok := stats[i][stage]
			if !ok {
				continue
			}
			tableRow(bw, []string{stage, names[i], strconv.Itoa(s.Steps), groupDigits(s.Tokens),
				fmt4(s.FinalTrainLoss), fmt4(s.FinalEvalLoss), duration(s.Seconds)})
		}
	}

	writeBySource(bw, runs, names)
	writeEvalResults(bw, runs, names)
	return bw.Flush()
}

// writeBySource writes the last eval's loss per data source, per stage.
func writeBySource(bw *bufio.Writer, runs []*Run, names []string) {
	type key struct{ stage, source string }
	last := make([]map[key]float64, len(runs))
	var keys []key
	seen := map[key]bool{}
	for _, stage := range unionStages(runs) {
		var sources []string
		for i, r := range runs {
			last[i] = orMap(last[i])
			for _, e := range r.Eval {
				if e.Stage != stage {
					continue
				}
				for src, v := range e.BySource {
					last[i][key{stage, src}] = float64(v.Loss)
					if !seen[key{stage, src}] {
						seen[key{stage, src}] = true
						sources = append(sources, src)
					}
				}
			}
		}
		sort.Strings(sources)
		for _, s := range sources {
			keys = append(keys, key{stage, s})
		}
	}
	if len(keys) == 0 {
		return
	}
	fmt.Fprintf(bw, "\n## Final eval loss by source\n\n")
	header(bw, append([]string{"stage", "source"}, names...))
	for _, k := range keys {
		row := []string{k.stage, k.source}
		for i := range runs {
			v, ok := last[i][k]
			if !ok {
				v = math.NaN()
			}
			row = append(row, fmt4(v))
		}
		tableRow(bw, row)
	}
}

func orMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

// writeEvalResults writes the union of eval/*.json metrics, sorted by file
// then metric.
func writeEvalResults(bw *bufio.Writer, runs []*Run, names []string) {
	type key struct{ suite, metric string }
	seen := map[key]bool{}
	var keys []key
	for _, r := range runs {
		for suite, m := range r.EvalResults {
			for metric := range m {
				if k := (key{suite, metric}); !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	if len(keys) == 0 {
		return
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].suite != keys[j].suite {
			return keys[i].suite < keys[j].suite
		}
		return keys[i].metric < keys[j].metric
	})
	fmt.Fprintf(bw, "\n## Eval metrics\n\n")
	header(bw, append([]string{"eval", "metric"}, names...))
	for _, k := range keys {
		row := []string{k.suite, k.metric}
		for _, r := range runs {
			v, ok := r.EvalResults[k.suite][k.metric]
			if !ok {
				row = append(row, "—")
				continue
			}
			row = append(row, number(v))
		}
		tableRow(bw, row)
	}
}

// unionStages lists every run's stages: each run's order, first run first.
func unionStages(runs []*Run) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range runs {
		for _, s := range r.Stages {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// displayNames returns run names, made unique with " (2)", " (3)"... when
// two directories share a base name.
func displayNames(runs []*Run) []string {
	out := make([]string, len(runs))
	count := map[string]int{}
	for i, r := range runs {
		count[r.Name]++
		out[i] = r.Name
		if n := count[r.Name]; n > 1 {
			out[i] = fmt.Sprintf("%s (%d)", r.Name, n)
		}
	}
	return out
}

func header(w io.Writer, cols []string) {
	tableRow(w, cols)
	seps := make([]string, len(cols))
	for i := range seps {
		seps[i] = "---"
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
}

func tableRow(w io.Writer, cells []string) {
	esc := make([]string, len(cells))
	for i, c := range cells {
		esc[i] = cell(c)
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(esc, " | "))
}

// cell escapes s for a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

func fmt4(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

// number formats a metric: integers exactly, others to 4 significant digits.
func number(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func groupDigits(n int64) string {
	if n == 0 {
		return "—"
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func duration(sec float64) string {
	if math.IsNaN(sec) || sec < 0 {
		return "—"
	}
	s := int64(math.Round(sec))
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm", s/3600, (s/60)%60)
	}
}
