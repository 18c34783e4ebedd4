package infer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// MCItem is one multiple-choice question: a chat whose next assistant turn is one of Choices.
type MCItem struct {
	ID       string         `json:"id"`
	Messages []chat.Message `json:"messages"`
	Choices  []string       `json:"choices"`
	Answer   int            `json:"answer"`

	where string // "file:line" it was read from, for errors
}

// MCResult is the score of one item: the log-probability of each choice (the sum over its tokens and the
// end-of-turn token, given the prompt), the chosen index and the margin of the correct choice over the best other.
type MCResult struct {
	ID       string    `json:"id"`
	LogProbs []float64 `json:"logprobs"`
	Tokens   []int     `json:"tokens"`
	Pick     int       `json:"pick"`
	Answer   int       `json:"answer"`
	Correct  bool      `json:"correct"`
	Margin   float64   `json:"margin"`
	// PickNorm is the choice with the highest log-probability per token (length-normalised).
	PickNorm    int  `json:"pick_norm"`
	CorrectNorm bool `json:"correct_norm"`
}

// MCSummary aggregates MCResults.
type MCSummary struct {
	N          int     `json:"n"`
	Accuracy   float64 `json:"mc_accuracy"`
	MeanMargin float64 `json:"mc_margin"`
	// AccuracyNorm is the accuracy when choices are ranked by log-probability per token.
	AccuracyNorm float64 `json:"mc_accuracy_norm"`
}

// ReadMC reads multiple-choice JSONL; errors name the line.
func ReadMC(r io.Reader, name string) ([]MCItem, error) {
	var items []MCItem
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		it := MCItem{where: fmt.Sprintf("%s:%d", name, line)}
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		switch {
		case len(it.Messages) == 0:
			return nil, fmt.Errorf("%s:%d: no messages", name, line)
		case len(it.Choices) == 0:
			return nil, fmt.Errorf("%s:%d: the choice list is empty", name, line)
		case it.Answer < 0 || it.Answer >= len(it.Choices):
			return nil, fmt.Errorf("%s:%d: answer %d outside the %d choices", name, line, it.Answer, len(it.Choices))
		}
		for i, c := range it.Choices {
			if c == "" {
				return nil, fmt.Errorf("%s:%d: choice %d is empty", name, line, i)
			}
		}
		items = append(items, it)
	}
	return items, sc.Err()
}

// CheckMC renders every item's prompt, so that a chat the template rejects (an unknown role, say) is reported with
// its file and line before any model work.
func CheckMC(tmpl *chat.Template, items []MCItem) error {
	for _, it := range items {
		if _, err := tmpl.RenderPrompt(it.Messages); err != nil {
			return fmt.Errorf("%sitem %s: %w", it.at(), it.ID, err)
		}
	}
	return nil
}

// ScoreMC scores every choice of every item with one forward pass per choice.
func ScoreMC(m *decoder.Model, tmpl *chat.Template, tok *tokenizer.Tokenizer, items []MCItem) ([]MCResult, MCSummary, error) {
	var res []MCResult
	var sum MCSummary
	for _, it := range items {
		prompt, err := tmpl.RenderPrompt(it.Messages)
		if err != nil {
			return nil, sum, fmt.Errorf("%sitem %s: %w", it.at(), it.ID, err)
		}
		r := MCResult{ID: it.ID, Answer: it.Answer}
		for _, c := range it.Choices {
			cont := append(tok.Encode(c), tmpl.EOT())
			lp, err := ContinuationLogProb(m, prompt, cont)
			if err != nil {
				return nil, sum, fmt.Errorf("%sitem %s: %w", it.at(), it.ID, err)
			}
			r.LogProbs = append(r.LogProbs, lp)
			r.Tokens = append(r.Tokens, len(cont))
		}
		best, other := 0, math.Inf(-1)
		for i, lp := range r.LogProbs {
			if lp > r.LogProbs[best] {
				best = i
			}
			if i != it.Answer && lp > other {
				other = lp
			}
		}
		r.Pick = best
		for i, lp := range r.LogProbs {
			if lp/float64(r.Tokens[i]) > r.LogProbs[r.PickNorm]/float64(r.Tokens[r.PickNorm]) {
				r.PickNorm = i
			}
		}
		r.CorrectNorm = r.PickNorm == it.Answer
		if r.CorrectNorm {
			sum.AccuracyNorm++
		}
		r.Correct = best == it.Answer
		r.Margin = r.LogProbs[it.Answer] - other
		if len(it.Choices) == 1 {
			r.Margin = 0
		}
		res = append(res, r)
		sum.N++
		if r.Correct {
			sum.Accuracy++
		}
		sum.MeanMargin += r.Margin
	}
	if sum.N > 0 {
		sum.Accuracy /= float64(sum.N)
		sum.MeanMargin /= float64(sum.N)
		sum.AccuracyNorm /= float64(sum.N)
	}
	return res, sum, nil
}

// ContinuationLogProb returns log p(cont | prompt), summed over cont's tokens.
func ContinuationLogProb(m *decoder.Model, prompt, cont []int) (float64, error) {
	if len(prompt) == 0 || len(cont) == 0 {
		return 0, errors.New("infer: empty prompt or continuation")
	}
	all := append(append([]int(nil), prompt...), cont...)
	n := len(all) - 1
	ids := make([]int64, n)
	tgt := make([]int64, n)
	pos := make([]int64, n)
	seg := make([]int64, n)
	for i := 0; i < n; i++ {
		ids[i] = int64(all[i])
		pos[i] = int64(i)
		seg[i] = 1
		tgt[i] = -100
		if i+1 >= len(prompt) {
			tgt[i] = int64(all[i+1])
		}
	}
	s := torch.NewScope()
	defer s.Close()
	dev := m.Options().Device
	t := func(v []int64) *torch.Tensor { return torch.FromInt64s(v, 1, int64(n)).ToDevice(dev) }
	lp, err := m.LogProbs(t(ids), t(pos), t(seg), t(tgt)).SumAll().Item()
	return lp, err
}

// at is "file:line: " for items read by ReadMC, else "".
func (it MCItem) at() string {
	if it.where == "" {
		return ""
	}
	return it.where + ": "
}
