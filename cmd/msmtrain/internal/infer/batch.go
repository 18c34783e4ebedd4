package infer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// Finish reasons of a Completion.
const (
	FinishStop   = "stop"   // a stop token or stop string ended it
	FinishLength = "length" // MaxNew tokens were generated
)

// prefillLogits bounds the float32 logits one prefill chunk produces (B x chunk x V): 2^28 values, 1 GiB, about
// 110 positions of 16 rows of a 152k vocabulary. A variable for tests.
var prefillLogits = 1 << 28

// Request is one sequence to continue: a prompt and the seed of its random source (see RowSeed).
type Request struct {
	Prompt []int
	Seed   uint64
}

// Completion is the result of one Request.
type Completion struct {
	Index  int    // position of the request in the batch
	Tokens []int  // generated tokens, without the stop token
	Text   string // decoded Tokens, cut before the first stop string (empty without GenOptions.Decode)
	Finish string // FinishStop or FinishLength
}

// GenOptions configures GenerateBatch.
type GenOptions struct {
	Sampling
	MaxNew      int                    // tokens generated at most per request
	StopTokens  []int                  // end-of-turn, end-of-sequence
	StopStrings []string               // text that ends a completion (needs Decode)
	Decode      func(ids []int) string // token ids to text, for Text and stop strings
}

// GenerateBatch continues every request together with one KV cache: prompts of different lengths are left
// padded (segment 0, never attended) and each prompt's positions start at 0 at its first real token. emit is
// called once per request, as soon as it finishes; requests are independent of the batch they run in (up to
// floating-point differences between batch shapes), each drawing from its own seeded source.
func GenerateBatch(m *decoder.Model, reqs []Request, o GenOptions, emit func(Completion) error) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.MaxNew <= 0 {
		return fmt.Errorf("infer: max new tokens %d must be positive", o.MaxNew)
	}
	if len(o.StopStrings) > 0 && o.Decode == nil {
		return errors.New("infer: stop strings need a decoder")
	}
	B := len(reqs)
	if B == 0 {
		return nil
	}
	L := 0
	V := m.Config.VocabSize
	for i, r := range reqs {
		if len(r.Prompt) == 0 {
			return fmt.Errorf("infer: request %d has an empty prompt", i)
		}
		for _, t := range r.Prompt {
			if t < 0 || t >= V {
				return fmt.Errorf("infer: request %d: token %d outside the vocabulary of %d", i, t, V)
			}
		}
		if mp := m.Config.MaxPositionEmbeddings; mp > 0 && len(r.Prompt)+o.MaxNew > mp {
			return fmt.Errorf("infer: request %d: a prompt of %d tokens and %d new tokens exceed the model's max_position_embeddings %d",
				i, len(r.Prompt), o.MaxNew, mp)
		}
		L = max(L, len(r.Prompt))
	}
	cache, err := m.NewCache(B, L+o.MaxNew)
	if err != nil {
		return err
	}
	defer cache.Free()
	isStop := map[int]bool{}
	for _, s := range o.StopTokens {
		isStop[s] = true
	}
	maxStop := 0
	for _, s := range o.StopStrings {
		maxStop = max(maxStop, len(s))
	}
	rows := make([]genRow, B)
	for i, r := range reqs {
		rows[i] = genRow{rng: NewRand(r.Seed), next: len(r.Prompt)}
	}
	sm := &sampler{s: o.Sampling}

	// Prefill: the left-padded prompts (B, L), in chunks of columns that bound the logits' size.
	ids := make([]int64, B*L)
	pos := make([]int64, B*L)
	seg := make([]int64, B*L)
	for b, r := range reqs {
		pad := L - len(r.Prompt)
		for k, t := range r.Prompt {
			ids[b*L+pad+k], pos[b*L+pad+k], seg[b*L+pad+k] = int64(t), int64(k), 1
		}
	}
	chunk := max(1, min(L, prefillLogits/(B*V)))
	var next []int
	for c0 := 0; c0 < L; c0 += chunk {
		T := min(chunk, L-c0)
		cut := func(v []int64) []int64 {
			out := make([]int64, 0, B*T)
			for b := 0; b < B; b++ {
				out = append(out, v[b*L+c0:b*L+c0+T]...)
			}
			return out
		}
		next, err = step(m, cache, cut(ids), cut(pos), cut(seg), B, T, c0+T == L, rows, sm)
		if err != nil {
			return err
		}
	}
	one := make([]int64, B)
	for b := range one {
		one[b] = 1
	}
	live := B
	for k := 0; ; k++ {
		for b := range rows {
			r := &rows[b]
			if r.done {
				continue
			}
			finish := ""
			if isStop[next[b]] {
				finish = FinishStop
			} else {
				r.toks = append(r.toks, next[b])
				if len(o.StopStrings) > 0 && stopIn(o.Decode(r.toks[max(0, len(r.toks)-maxStop-8):]), o.StopStrings) {
					finish = FinishStop
				} else if len(r.toks) >= o.MaxNew {
					finish = FinishLength
				}
			}
			if finish == "" {
				continue
			}
			r.done = true
			live--
			c := Completion{Index: b, Tokens: r.toks, Finish: finish}
			if o.Decode != nil {
				c.Text = cutStop(o.Decode(r.toks), o.StopStrings)
			}
			if err := emit(c); err != nil {
				return err
			}
		}
		if live == 0 {
			return nil
		}
		tok := make([]int64, B)
		p := make([]int64, B)
		for b := range rows {
			tok[b], p[b] = int64(next[b]), int64(rows[b].next)
			rows[b].next++
		}
		if next, err = step(m, cache, tok, p, one, B, 1, true, rows, sm); err != nil {
			return err
		}
	}
}

// genRow is the state of one request.
type genRow struct {
	rng  *rand.Rand
	toks []int
	next int // position of the next token fed
	done bool
}

// step runs (B, T) through the cached model and, when want, draws each row's next token from the last position:
// the argmax on the device when greedy, else the (B, V) float32 logits are copied out and sampled in Go.
func step(m *decoder.Model, c *decoder.Cache, ids, pos, seg []int64, B, T int, want bool, rows []genRow, sm *sampler) ([]int, error) {
	s := torch.NewScope()
	defer s.Close()
	dev := m.Options().Device
	t := func(v []int64) *torch.Tensor { return torch.FromInt64s(v, int64(B), int64(T)).ToDevice(dev) }
	logits := m.ForwardCached(t(ids), t(pos), t(seg), c) // (B, T, V)
	if !want {
		return nil, logits.Err()
	}
	last := logits.Narrow(1, int64(T-1), 1).Squeeze(1) // (B, V)
	next := make([]int, B)
	if sm.s.Greedy() {
		v, err := last.Argmax(-1, false).Int64s()
		if err != nil {
			return nil, err
		}
		for b := range next {
			next[b] = int(v[b])
		}
		return next, nil
	}
	v, err := last.Float32s()
	if err != nil {
		return nil, err
	}
	V := len(v) / B
	for b := range next {
		if !rows[b].done {
			next[b] = sm.sample(v[b*V:(b+1)*V], rows[b].rng)
		}
	}
	return next, nil
}

// stopIn reports whether text contains one of stops.
func stopIn(text string, stops []string) bool {
	for _, s := range stops {
		if s != "" && strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// cutStop cuts text before the earliest stop string.
func cutStop(text string, stops []string) string {
	cut := len(text)
	for _, s := range stops {
		if i := strings.Index(text, s); s != "" && i >= 0 && i < cut {
			cut = i
		}
	}
	return text[:cut]
}
