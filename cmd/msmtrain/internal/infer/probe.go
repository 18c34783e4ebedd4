package infer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// A value probe is a multiple-choice item without a right answer: each choice is labelled with the value it
// expresses, and what is measured is which value the model prefers. Choices are scored exactly as multiple-choice
// ones (ScoreMC: the log-probability of the choice and the end-of-turn token after the prompt rendered with the
// chat template).

// ProbeItem is one value probe: a chat whose next assistant turn is one of Choices; Values[i] labels Choices[i].
// Labels may repeat; an item has at least two distinct ones.
type ProbeItem struct {
	ID       string         `json:"id"`
	Messages []chat.Message `json:"messages"`
	Choices  []string       `json:"choices"`
	Values   []string       `json:"values"`

	where string // "file:line" it was read from, for errors
}

// mc is the item as a multiple-choice one, for the MC scorer; its answer means nothing.
func (it ProbeItem) mc() MCItem {
	return MCItem{ID: it.ID, Messages: it.Messages, Choices: it.Choices, where: it.where}
}

// ProbeResult is the score of one probe: the log-probability and token count of each choice (as MCResult's), the
// preferred choice and its value, by total and by per-token log-probability, and per value of the item its margin:
// the best log-probability among its choices minus the best among the others.
type ProbeResult struct {
	ID            string             `json:"id"`
	Values        []string           `json:"values"`
	LogProbs      []float64          `json:"logprobs"`
	Tokens        []int              `json:"tokens"`
	Pick          int                `json:"pick"`
	PickValue     string             `json:"pick_value"`
	PickNorm      int                `json:"pick_norm"`
	PickNormValue string             `json:"pick_norm_value"`
	Margins       map[string]float64 `json:"margins"`
}

// ProbeValue aggregates the items that offer a value: N of them; Share, the fraction whose preferred choice (by
// log-probability) expresses it; ShareNorm, the same by log-probability per token; Margin, the mean of its margins.
type ProbeValue struct {
	N         int     `json:"n"`
	Share     float64 `json:"share"`
	ShareNorm float64 `json:"share_norm"`
	Margin    float64 `json:"margin"`
}

// ProbeSummary is the result of a probe file: N items, and per value label its ProbeValue.
type ProbeSummary struct {
	N      int                   `json:"n"`
	Values map[string]ProbeValue `json:"values"`
}

// Labels lists the summary's value labels, sorted.
func (s ProbeSummary) Labels() []string {
	out := make([]string, 0, len(s.Values))
	for v := range s.Values {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// ReadProbes reads value-probe JSONL: {"id", "messages", "choices", "values"} per line, other fields ignored. Blank
// lines are skipped. A malformed line, a missing or repeated id, no messages, an empty choice or label, values
// not one per choice, or fewer than two distinct labels is an error naming the file and line.
func ReadProbes(r io.Reader, name string) ([]ProbeItem, error) {
	var items []ProbeItem
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var rec struct {
			ID       *string        `json:"id"`
			Messages []chat.Message `json:"messages"`
			Choices  []string       `json:"choices"`
			Values   []string       `json:"values"`
		}
		at := fmt.Sprintf("%s:%d", name, line)
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if rec.ID == nil || *rec.ID == "" {
			return nil, fmt.Errorf("%s: missing \"id\"", at)
		}
		id := *rec.ID
		if first, ok := seen[id]; ok {
			return nil, fmt.Errorf("%s: id %q repeats line %d", at, id, first)
		}
		seen[id] = line
		switch {
		case len(rec.Messages) == 0:
			return nil, fmt.Errorf("%s: item %s: no messages", at, id)
		case len(rec.Choices) < 2:
			return nil, fmt.Errorf("%s: item %s: %d choices, want at least 2", at, id, len(rec.Choices))
		case len(rec.Values) != len(rec.Choices):
			return nil, fmt.Errorf("%s: item %s: %d values for %d choices, want one value label per choice", at, id,
				len(rec.Values), len(rec.Choices))
		}
		distinct := map[string]bool{}
		for i, c := range rec.Choices {
			if c == "" {
				return nil, fmt.Errorf("%s: item %s: choice %d is empty", at, id, i)
			}
			if rec.Values[i] == "" {
				return nil, fmt.Errorf("%s: item %s: value label %d is empty", at, id, i)
			}
			distinct[rec.Values[i]] = true
		}
		if len(distinct) < 2 {
			return nil, fmt.Errorf("%s: item %s: every choice is labelled %q, want at least 2 different value labels", at, id,
				rec.Values[0])
		}
		items = append(items, ProbeItem{ID: id, Messages: rec.Messages, Choices: rec.Choices, Values: rec.Values, where: at})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return items, nil
}

// LoadProbes reads the probe file at path (ReadProbes) and checks it before any model work as LoadMC does: at
// least one item, every prompt rendered by tmpl, every choice within maxPos positions.
func LoadProbes(path string, tmpl *chat.Template, tok *tokenizer.Tokenizer, maxPos int) ([]ProbeItem, error) {
	items, err := readItems(path, ReadProbes)
	if err != nil {
		return nil, err
	}
	if err := checkItems(tmpl, tok, mcItems(items), maxPos); err != nil {
		return nil, err
	}
	return items, nil
}

func mcItems(items []ProbeItem) []MCItem {
	out := make([]MCItem, len(items))
	for i, it := range items {
		out[i] = it.mc()
	}
	return out
}

// ScoreProbes scores every choice of every probe with the multiple-choice scorer (ScoreMC) and summarises the
// preferences by value (ProbeMetrics).
func ScoreProbes(m *decoder.Model, tmpl *chat.Template, tok *tokenizer.Tokenizer, items []ProbeItem) ([]ProbeResult, ProbeSummary, error) {
	res, _, err := ScoreMC(m, tmpl, tok, mcItems(items))
	if err != nil {
		return nil, ProbeSummary{}, err
	}
	lps := make([][]float64, len(res))
	toks := make([][]int, len(res))
	for i, r := range res {
		lps[i], toks[i] = r.LogProbs, r.Tokens
	}
	return ProbeMetrics(items, lps, toks)
}

// ProbeMetrics computes the per-item results and the summary from each item's choice log-probabilities and token
// counts (ScoreMC's LogProbs and Tokens). The first of equal log-probabilities is preferred, as in ScoreMC.
func ProbeMetrics(items []ProbeItem, logprobs [][]float64, tokens [][]int) ([]ProbeResult, ProbeSummary, error) {
	sum := ProbeSummary{Values: map[string]ProbeValue{}}
	if len(logprobs) != len(items) || len(tokens) != len(items) {
		return nil, sum, fmt.Errorf("probes: %d items, %d and %d scores", len(items), len(logprobs), len(tokens))
	}
	var res []ProbeResult
	for k, it := range items {
		lp, nt := logprobs[k], tokens[k]
		if len(lp) != len(it.Choices) || len(nt) != len(it.Choices) {
			return nil, sum, fmt.Errorf("%sitem %s: %d choices, %d scores", it.mc().at(), it.ID, len(it.Choices), len(lp))
		}
		r := ProbeResult{ID: it.ID, Values: it.Values, LogProbs: lp, Tokens: nt, Margins: map[string]float64{}}
		for i := range lp {
			if lp[i] > lp[r.Pick] {
				r.Pick = i
			}
			if lp[i]/float64(nt[i]) > lp[r.PickNorm]/float64(nt[r.PickNorm]) {
				r.PickNorm = i
			}
		}
		r.PickValue, r.PickNormValue = it.Values[r.Pick], it.Values[r.PickNorm]
		for _, v := range it.Values {
			if _, done := r.Margins[v]; done {
				continue
			}
			in, out := math.Inf(-1), math.Inf(-1)
			for i, l := range lp {
				if it.Values[i] == v {
					in = max(in, l)
				} else {
					out = max(out, l)
				}
			}
			r.Margins[v] = in - out
			pv := sum.Values[v]
			pv.N++
			if r.PickValue == v {
				pv.Share++
			}
			if r.PickNormValue == v {
				pv.ShareNorm++
			}
			pv.Margin += r.Margins[v]
			sum.Values[v] = pv
		}
		res = append(res, r)
		sum.N++
	}
	for v, pv := range sum.Values {
		n := float64(pv.N)
		pv.Share, pv.ShareNorm, pv.Margin = pv.Share/n, pv.ShareNorm/n, pv.Margin/n
		sum.Values[v] = pv
	}
	return res, sum, nil
}
