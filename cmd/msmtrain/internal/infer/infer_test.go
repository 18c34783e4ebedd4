package infer

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// tinyConfigs are small configurations of two families.
func tinyConfigs(vocab int) map[string]decoder.Config {
	base := decoder.Config{VocabSize: vocab, HiddenSize: 32, IntermediateSize: 48, NumLayers: 2, NumHeads: 4, NumKVHeads: 2,
		RMSNormEps: 1e-6, RopeTheta: 10000, HiddenAct: "silu"}
	llama := base
	llama.ModelType = "llama"
	llama.RMSNormEps = 1e-5
	llama.RopeTheta = 500000
	qwen3 := base
	qwen3.ModelType = "qwen3"
	qwen3.HeadDim = 16
	qwen3.TieWordEmbeddings = true
	qwen3.RopeTheta = 1000000
	return map[string]decoder.Config{"llama": llama, "qwen3": qwen3}
}

// newModel builds a random model with larger weights than New's (std 0.02 gives near-uniform logits, whose
// argmax would hinge on rounding).
func newModel(t testing.TB, c decoder.Config, seed uint64) *decoder.Model {
	t.Helper()
	m, err := decoder.New(c, decoder.Options{DType: torch.Float32, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	g, err := torch.NewGenerator(seed+100, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	s := torch.NewScope()
	defer s.Close()
	torch.NoGrad(func() {
		for _, p := range m.Params() {
			if len(p.Tensor.Shape()) != 2 {
				continue
			}
			if err := p.Tensor.CopyFrom(torch.Randn(g, 0, 0.15, torch.Float32, torch.CPU, p.Tensor.Shape()...)); err != nil {
				t.Fatal(err)
			}
		}
	})
	return m
}

// fullGreedy decodes greedily by running the whole sequence through Forward at every step.
func fullGreedy(t *testing.T, m *decoder.Model, prompt []int, maxNew int, stop map[int]bool) []int {
	seq := append([]int(nil), prompt...)
	var out []int
	for len(out) < maxNew {
		s := torch.NewScope()
		n := int64(len(seq))
		ids, pos, seg := make([]int64, n), make([]int64, n), make([]int64, n)
		for i, x := range seq {
			ids[i], pos[i], seg[i] = int64(x), int64(i), 1
		}
		v, err := m.Forward(torch.FromInt64s(ids, 1, n), torch.FromInt64s(pos, 1, n), torch.FromInt64s(seg, 1, n)).
			Narrow(1, n-1, 1).Argmax(-1, false).Int64s()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if stop[int(v[0])] {
			break
		}
		out = append(out, int(v[0]))
		seq = append(seq, int(v[0]))
	}
	return out
}

func generateAll(t testing.TB, m *decoder.Model, reqs []Request, o GenOptions, batch int) [][]int {
	t.Helper()
	out := make([][]int, len(reqs))
	for b0 := 0; b0 < len(reqs); b0 += batch {
		part := reqs[b0:min(b0+batch, len(reqs))]
		err := GenerateBatch(m, part, o, func(c Completion) error {
			if out[b0+c.Index] != nil {
				return fmt.Errorf("request %d emitted twice", b0+c.Index)
			}
			out[b0+c.Index] = append([]int{}, c.Tokens...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

var testPrompts = [][]int{{5, 9, 13, 2, 40}, {7, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {11}}

func TestGreedyCachedEqualsRecompute(t *testing.T) {
	for name, c := range tinyConfigs(64) {
		t.Run(name, func(t *testing.T) {
			live := torch.LiveTensors()
			m := newModel(t, c, 3)
			defer func() {
				m.Free()
				if d := torch.LiveTensors() - live; d != 0 {
					t.Errorf("%d tensors leaked", d)
				}
			}()
			const maxNew = 12
			stop := map[int]bool{0: true}
			var reqs []Request
			for _, p := range testPrompts {
				reqs = append(reqs, Request{Prompt: p})
			}
			o := GenOptions{MaxNew: maxNew, StopTokens: []int{0}}
			for _, batch := range []int{1, len(reqs)} {
				got := generateAll(t, m, reqs, o, batch)
				for i, p := range testPrompts {
					want := fullGreedy(t, m, p, maxNew, stop)
					if fmt.Sprint(got[i]) != fmt.Sprint(want) {
						t.Errorf("batch %d prompt %d: cached %v, recomputed %v", batch, i, got[i], want)
					}
				}
			}
		})
	}
}

// TestPrefillChunks shrinks the prefill logits budget so that prompts are prefilled a few columns at a time, as a
// 152k vocabulary would be, and checks the result against one-chunk prefill.
func TestPrefillChunks(t *testing.T) {
	m := newModel(t, tinyConfigs(64)["llama"], 8)
	defer m.Free()
	var reqs []Request
	for _, p := range testPrompts {
		reqs = append(reqs, Request{Prompt: p})
	}
	o := GenOptions{MaxNew: 6}
	want := generateAll(t, m, reqs, o, len(reqs))
	defer func(n int) { prefillLogits = n }(prefillLogits)
	prefillLogits = 2 * len(reqs) * 64 // two columns per chunk
	if got := generateAll(t, m, reqs, o, len(reqs)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("chunked prefill %v, one chunk %v", got, want)
	}
}

func TestSamplingReproducible(t *testing.T) {
	m := newModel(t, tinyConfigs(64)["qwen3"], 4)
	defer m.Free()
	var reqs []Request
	for i, p := range testPrompts {
		for s := 0; s < 3; s++ {
			reqs = append(reqs, Request{Prompt: p, Seed: RowSeed(7, fmt.Sprint("p", i), s)})
		}
	}
	for _, smp := range []Sampling{{Temperature: 1}, {Temperature: 0.8, TopP: 0.9}, {Temperature: 1.2, TopK: 5}, {Temperature: 1, TopK: 10, TopP: 0.5}} {
		t.Run(fmt.Sprintf("%+v", smp), func(t *testing.T) {
			o := GenOptions{Sampling: smp, MaxNew: 10}
			ref := generateAll(t, m, reqs, o, 1)
			for _, batch := range []int{1, 4, len(reqs)} {
				got := generateAll(t, m, reqs, o, batch)
				if fmt.Sprint(got) != fmt.Sprint(ref) {
					t.Fatalf("batch %d: %v, batch 1: %v", batch, got, ref)
				}
			}
			// Different samples of a prompt differ (with overwhelming probability at these temperatures).
			if smp.TopK == 0 && smp.TopP == 0 && fmt.Sprint(ref[0]) == fmt.Sprint(ref[1]) && fmt.Sprint(ref[1]) == fmt.Sprint(ref[2]) {
				t.Errorf("three samples are identical: %v", ref[0])
			}
		})
	}
}

func TestStopStrings(t *testing.T) {
	m := newModel(t, tinyConfigs(64)["llama"], 5)
	defer m.Free()
	dec := func(ids []int) string {
		var b strings.Builder
		for _, i := range ids {
			fmt.Fprintf(&b, "<%d>", i)
		}
		return b.String()
	}
	o := GenOptions{MaxNew: 10, Decode: dec}
	ref := generateAll(t, m, []Request{{Prompt: testPrompts[0]}}, o, 1)[0]
	if len(ref) < 4 {
		t.Fatalf("too short: %v", ref)
	}
	o.StopStrings = []string{fmt.Sprintf("<%d>", ref[3])}
	var got Completion
	if err := GenerateBatch(m, []Request{{Prompt: testPrompts[0]}}, o, func(c Completion) error { got = c; return nil }); err != nil {
		t.Fatal(err)
	}
	first := 0
	for ref[first] != ref[3] {
		first++
	}
	if got.Finish != FinishStop || got.Text != dec(ref[:first]) || len(got.Tokens) != first+1 {
		t.Errorf("stop %q: %+v; full %v", o.StopStrings[0], got, ref)
	}
	o.StopStrings = nil
	o.MaxNew = 3
	if err := GenerateBatch(m, []Request{{Prompt: testPrompts[0]}}, o, func(c Completion) error { got = c; return nil }); err != nil {
		t.Fatal(err)
	}
	if got.Finish != FinishLength || len(got.Tokens) != 3 {
		t.Errorf("max 3: %+v", got)
	}
}

func TestSampler(t *testing.T) {
	logits := []float32{0, 3, 1, 2.9, -1, 2, 3}
	count := func(s Sampling) map[int]int {
		r := NewRand(1)
		n := map[int]int{}
		for i := 0; i < 4000; i++ {
			n[s.Sample(logits, r)]++
		}
		return n
	}
	if got := (Sampling{}).Sample(logits, NewRand(1)); got != 1 {
		t.Errorf("greedy: %d, want 1 (first of the tied maxima)", got)
	}
	for _, c := range []struct {
		s    Sampling
		want []int
	}{
		{Sampling{Temperature: 1, TopK: 1}, []int{1, 6}}, // ties with the k-th value are kept
		{Sampling{Temperature: 1, TopK: 3}, []int{1, 3, 6}},
		{Sampling{Temperature: 1, TopP: 0.01}, []int{1}},
		{Sampling{Temperature: 1, TopP: 0.5}, []int{1, 6}},
		{Sampling{Temperature: 1, TopP: 0.6}, []int{1, 3, 6}},
		{Sampling{Temperature: 0.05}, []int{1, 3, 6}},
		{Sampling{Temperature: 1}, []int{0, 1, 2, 3, 4, 5, 6}},
	} {
		n := count(c.s)
		if len(n) != len(c.want) {
			t.Errorf("%+v: drew %v, want exactly %v", c.s, n, c.want)
		}
		for _, w := range c.want {
			if n[w] == 0 {
				t.Errorf("%+v: never drew %d (%v)", c.s, w, n)
			}
		}
	}
	// Frequencies follow the softmax.
	n := count(Sampling{Temperature: 1})
	var z float64
	for _, l := range logits {
		z += math.Exp(float64(l))
	}
	for i, l := range logits {
		p := math.Exp(float64(l)) / z
		if f := float64(n[i]) / 4000; math.Abs(f-p) > 4*math.Sqrt(p*(1-p)/4000)+1e-3 {
			t.Errorf("token %d: frequency %.3f, probability %.3f", i, f, p)
		}
	}
	if err := (Sampling{Temperature: -1}).Validate(); err == nil {
		t.Error("negative temperature accepted")
	}
	if err := (Sampling{TopP: 1.5}).Validate(); err == nil {
		t.Error("top-p 1.5 accepted")
	}
}

func TestRowSeed(t *testing.T) {
	a := RowSeed(1, "x", 0)
	for _, b := range []uint64{RowSeed(2, "x", 0), RowSeed(1, "y", 0), RowSeed(1, "x", 1), RowSeed(1, "", 0)} {
		if a == b {
			t.Errorf("seed collision %d", a)
		}
	}
	if RowSeed(1, "x", 0) != a {
		t.Error("not deterministic")
	}
}

// chatFixture returns a byte-level tokenizer with ChatML special tokens and its template.
func chatFixture(t testing.TB) (*tokenizer.Tokenizer, *chat.Template) {
	t.Helper()
	corpus := []string{"The model should be honest and helpful.", "What is the answer? Yes, no, maybe."}
	tj, err := tokenizer.NewByteLevel(40, corpus, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Parse(tj, "tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.New("chatml", tok)
	if err != nil {
		t.Fatal(err)
	}
	return tok, tmpl
}

// TestMCMatchesTokenLogProbs: each choice's score is the sum of its tokens' log-probabilities when the whole
// sequence is scored with TokenLogProbs (as msmtrain score does, several rows together).
func TestMCMatchesTokenLogProbs(t *testing.T) {
	tok, tmpl := chatFixture(t)
	c := tinyConfigs(tok.VocabSize())["qwen3"]
	m := newModel(t, c, 9)
	defer m.Free()
	src := `{"id":"a","messages":[{"role":"user","content":"Is it honest?"}],"choices":["Yes","No, not at all","maybe"],"answer":1}

{"id":"b","messages":[{"role":"system","content":"Be helpful."},{"role":"user","content":"What?"}],"choices":["The answer"],"answer":0}
`
	items, err := ReadMC(strings.NewReader(src), "mc.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	res, sum, err := ScoreMC(m, tmpl, tok, items)
	if err != nil {
		t.Fatal(err)
	}
	var seqs [][]int
	var spans [][2]int // per choice: prompt length, continuation length
	for _, it := range items {
		prompt, err := tmpl.RenderPrompt(it.Messages)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range it.Choices {
			cont := append(tok.Encode(ch), tmpl.EOT())
			seqs = append(seqs, append(append([]int{}, prompt...), cont...))
			spans = append(spans, [2]int{len(prompt), len(cont)})
		}
	}
	var scored [][]float32
	for s := 0; s < len(seqs); s += 3 {
		lps, err := TokenLogProbs(m, seqs[s:min(s+3, len(seqs))])
		if err != nil {
			t.Fatal(err)
		}
		scored = append(scored, lps...)
	}
	k := 0
	var worst float64
	correct, correctNorm := 0, 0
	for _, r := range res {
		for i := range r.LogProbs {
			var want float64
			for _, lp := range scored[k][spans[k][0]-1:] {
				want += float64(lp)
			}
			if len(scored[k])-(spans[k][0]-1) != spans[k][1] || r.Tokens[i] != spans[k][1] {
				t.Fatalf("item %s choice %d: %d tokens scored", r.ID, i, r.Tokens[i])
			}
			worst = max(worst, math.Abs(want-r.LogProbs[i]))
			k++
		}
		if r.Correct {
			correct++
		}
		if r.CorrectNorm {
			correctNorm++
		}
	}
	t.Logf("largest difference from TokenLogProbs sums: %.2e nats", worst)
	if worst > 1e-4 {
		t.Errorf("largest difference %.2e", worst)
	}
	if sum.N != 2 || sum.Accuracy != float64(correct)/2 || sum.AccuracyNorm != float64(correctNorm)/2 {
		t.Errorf("summary %+v", sum)
	}
}

// TestTokenLogProbs: rows scored together, right-padded, equal each sequence scored alone.
func TestTokenLogProbs(t *testing.T) {
	m := newModel(t, tinyConfigs(64)["llama"], 5)
	defer m.Free()
	rows := [][]int{{1, 2, 3, 4}, {7}, {9, 8, 7, 6, 5, 4, 3}}
	got, err := TokenLogProbs(m, rows)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for i, seq := range rows {
		if len(got[i]) != len(seq)-1 {
			t.Fatalf("row %d: %d values, want %d", i, len(got[i]), len(seq)-1)
		}
		for k := 1; k < len(seq); k++ {
			lp, err := ContinuationLogProb(m, seq[:k], seq[k:k+1])
			if err != nil {
				t.Fatal(err)
			}
			worst = max(worst, math.Abs(lp-float64(got[i][k-1])))
		}
	}
	t.Logf("largest difference from each token scored alone: %.2e nats", worst)
	if worst > 1e-5 {
		t.Errorf("largest difference %.2e", worst)
	}
}

func TestReadErrors(t *testing.T) {
	tok, tmpl := chatFixture(t)
	_ = tok
	for _, c := range []struct{ name, src, want string }{
		{"mc empty choices", `{"id":"a","messages":[{"role":"user","content":"x"}],"choices":[],"answer":0}`, "f.jsonl:1: the choice list is empty"},
		{"mc malformed", "\n{\"id\":", "f.jsonl:2: "},
		{"mc unknown role", `{"id":"a","messages":[{"role":"user","content":"x"}],"choices":["y"],"answer":0}` + "\n" +
			`{"id":"b","messages":[{"role":"wizard","content":"x"}],"choices":["y"],"answer":0}`, "f.jsonl:2: item b: "},
		{"mc no answer", `{"id":"a","messages":[{"role":"user","content":"x"}],"choices":["y","z"],"answer":1}` + "\n" +
			`{"id":"b","messages":[{"role":"user","content":"x"}],"choices":["y","z"]}`, "f.jsonl:2: item b: missing \"answer\""},
		{"mc null answer", `{"id":"a","messages":[{"role":"user","content":"x"}],"choices":["y"],"answer":null}`, "f.jsonl:1: item a: missing \"answer\""},
		{"mc repeated id", `{"id":"a","messages":[{"role":"user","content":"x"}],"choices":["y"],"answer":0}` + "\n\n" +
			`{"id":"a","messages":[{"role":"user","content":"w"}],"choices":["y"],"answer":0}`, `f.jsonl:3: id "a" repeats line 1`},
		{"mc no id", `{"messages":[{"role":"user","content":"x"}],"choices":["y"],"answer":0}`, "f.jsonl:1: missing \"id\""},
		{"prompt malformed", `{"id":"a","prompt":"x"}` + "\n" + `{"id":"b","prompt":`, "f.jsonl:2: "},
		{"prompt no id", `{"prompt":"x"}`, "f.jsonl:1: missing \"id\""},
		{"prompt both", `{"id":1,"prompt":"x","messages":[{"role":"user","content":"x"}]}`, "f.jsonl:1: both"},
		{"prompt neither", `{"id":1}`, "f.jsonl:1: no \"messages\""},
		{"prompt repeated id", `{"id":1,"prompt":"x"}` + "\n\n" + `{"id":1,"prompt":"y"}`, "f.jsonl:3: id 1 repeats line 1"},
		{"prompt unknown field", `{"id":1,"promt":"x"}`, "f.jsonl:1: json: unknown field"},
		{"prompt bad id", `{"id":[1],"prompt":"x"}`, "f.jsonl:1: \"id\" must be"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if strings.HasPrefix(c.name, "mc") {
				var items []MCItem
				if items, err = ReadMC(strings.NewReader(c.src), "f.jsonl"); err == nil {
					err = CheckMC(tmpl, items)
				}
			} else {
				_, err = ReadPrompts(strings.NewReader(c.src), "f.jsonl")
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}
