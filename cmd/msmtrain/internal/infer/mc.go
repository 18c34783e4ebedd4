package infer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

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

// ReadMC reads multiple-choice JSONL: {"id", "messages", "choices", "answer"} per line, other fields ignored. Blank
// lines are skipped. A malformed line, a missing or empty id, an id that repeats an earlier line, a missing answer
// or one outside the choices is an error naming the file and line.
func ReadMC(r io.Reader, name string) ([]MCItem, error) {
	var items []MCItem
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
			Answer   *int           `json:"answer"` // a pointer: an absent answer is not choice 0
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		switch {
		case rec.ID == nil || *rec.ID == "":
			return nil, fmt.Errorf("%s:%d: missing \"id\"", name, line)
		case len(rec.Messages) == 0:
			return nil, fmt.Errorf("%s:%d: item %s: no messages", name, line, *rec.ID)
		case len(rec.Choices) == 0:
			return nil, fmt.Errorf("%s:%d: the choice list is empty", name, line)
		case rec.Answer == nil:
			return nil, fmt.Errorf("%s:%d: item %s: missing \"answer\" (the index of the correct choice, from 0)", name, line, *rec.ID)
		case *rec.Answer < 0 || *rec.Answer >= len(rec.Choices):
			return nil, fmt.Errorf("%s:%d: answer %d outside the %d choices", name, line, *rec.Answer, len(rec.Choices))
		}
		if first, ok := seen[*rec.ID]; ok {
			return nil, fmt.Errorf("%s:%d: id %q repeats line %d", name, line, *rec.ID, first)
		}
		seen[*rec.ID] = line
		for i, c := range rec.Choices {
			if c == "" {
				return nil, fmt.Errorf("%s:%d: choice %d is empty", name, line, i)
			}
		}
		items = append(items, MCItem{ID: *rec.ID, Messages: rec.Messages, Choices: rec.Choices, Answer: *rec.Answer,
			where: fmt.Sprintf("%s:%d", name, line)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return items, nil
}

// LoadMC reads the multiple-choice file at path (ReadMC) and checks it before any model work: at least one item,
// every prompt rendered by tmpl (CheckMC), every choice within maxPos positions (CheckMCPositions).
func LoadMC(path string, tmpl *chat.Template, tok *tokenizer.Tokenizer, maxPos int) ([]MCItem, error) {
	items, err := readItems(path, ReadMC)
	if err != nil {
		return nil, err
	}
	if err := checkItems(tmpl, tok, items, maxPos); err != nil {
		return nil, err
	}
	return items, nil
}

// readItems reads the JSONL file at path with read and refuses a file without items.
func readItems[T any](path string, read func(io.Reader, string) ([]T, error)) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	items, err := read(f, path)
	f.Close()
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no items", path)
	}
	return items, nil
}

// checkItems is CheckMC and CheckMCPositions.
func checkItems(tmpl *chat.Template, tok *tokenizer.Tokenizer, items []MCItem, maxPos int) error {
	if err := CheckMC(tmpl, items); err != nil {
		return err
	}
	return CheckMCPositions(tmpl, tok, items, maxPos)
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

// CheckMCPositions reports an item whose prompt and longest choice (with its end-of-turn token) take more than
// maxPos positions (the model's max_position_embeddings; 0: no limit), naming its file and line.
func CheckMCPositions(tmpl *chat.Template, tok *tokenizer.Tokenizer, items []MCItem, maxPos int) error {
	if maxPos <= 0 {
		return nil
	}
	for _, it := range items {
		prompt, err := tmpl.RenderPrompt(it.Messages)
		if err != nil {
			return fmt.Errorf("%sitem %s: %w", it.at(), it.ID, err)
		}
		for i, c := range it.Choices {
			if n := len(prompt) + len(tok.Encode(c)) + 1; n > maxPos {
				return fmt.Errorf("%sitem %s: the prompt and choice %d take %d positions, more than the model's max_position_embeddings %d",
					it.at(), it.ID, i, n, maxPos)
			}
		}
	}
	return nil
}

// RunMC scores the multiple-choice file at path with m: LoadMC, then ScoreMC.
func RunMC(m *decoder.Model, tmpl *chat.Template, tok *tokenizer.Tokenizer, path string) ([]MCResult, MCSummary, error) {
	items, err := LoadMC(path, tmpl, tok, m.Config.MaxPositionEmbeddings)
	if err != nil {
		return nil, MCSummary{}, err
	}
	return ScoreMC(m, tmpl, tok, items)
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
	if mp := m.Config.MaxPositionEmbeddings; mp > 0 && len(all) > mp {
		return 0, fmt.Errorf("infer: %d positions exceed the model's max_position_embeddings %d", len(all), mp)
	}
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

// TokenLogProbs returns, for each row of token ids, the log-probability of each token after the first given the
// tokens before it (len-1 values; none for a row of one token). The rows run together, right-padded.
func TokenLogProbs(m *decoder.Model, rows [][]int) ([][]float32, error) {
	B, T := int64(len(rows)), int64(0)
	for _, r := range rows {
		T = max(T, int64(len(r)))
	}
	ids, pos, seg, tgt := make([]int64, B*T), make([]int64, B*T), make([]int64, B*T), make([]int64, B*T)
	for b, r := range rows {
		for t := range T {
			i := int64(b)*T + t
			tgt[i] = -100
			if t < int64(len(r)) {
				ids[i], pos[i], seg[i] = int64(r[t]), t, 1
				if t+1 < int64(len(r)) {
					tgt[i] = int64(r[t+1])
				}
			}
		}
	}
	s := torch.NewScope()
	defer s.Close()
	dev := m.Options().Device
	t := func(v []int64) *torch.Tensor { return torch.FromInt64s(v, B, T).ToDevice(dev) }
	v, err := m.LogProbs(t(ids), t(pos), t(seg), t(tgt)).Float32s() // (B, T)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, B)
	for b, r := range rows {
		out[b] = append([]float32{}, v[int64(b)*T:int64(b)*T+int64(max(len(r)-1, 0))]...)
	}
	return out, nil
}

// at is "file:line: " for items read by ReadMC, else "".
func (it MCItem) at() string {
	if it.where == "" {
		return ""
	}
	return it.where + ": "
}
