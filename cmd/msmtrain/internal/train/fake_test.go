package train

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// bigram is a small model for the trainer's own tests: logits = E[ids] W^T. It is fast and deterministic, so the
// tests exercise the loop (accumulation, resume, data parallelism) rather than a transformer.
type bigram struct {
	emb, out *torch.Tensor
	vocab    int64
}

func newBigram(vocab int64, seed uint64) *bigram {
	r := rand.New(rand.NewPCG(seed, 1))
	mk := func(n, c int64) *torch.Tensor {
		v := make([]float32, n*c)
		for i := range v {
			v[i] = float32(r.NormFloat64() * 0.1)
		}
		t := torch.FromFloat32s(v, n, c).SetRequiresGrad(true)
		torch.Keep(t)
		return t
	}
	return &bigram{emb: mk(vocab, 16), out: mk(vocab, 16), vocab: vocab}
}

func (m *bigram) LossAt(ids, pos, seg, targets, weights *torch.Tensor, rows []int64) *torch.Tensor {
	logits := torch.Linear(torch.Embedding(m.emb, ids), m.out, nil).Reshape(-1, m.vocab)
	return torch.CrossEntropy(logits, targets.Reshape(-1), weights.Reshape(-1), -100, torch.ReduceSum)
}

func (m *bigram) Params() []optim.Param {
	return []optim.Param{{Name: "emb", Tensor: m.emb, Decay: true}, {Name: "out", Tensor: m.out, Decay: true}}
}

func (m *bigram) FLOPsPerToken(int) float64 { return 6 * float64(2*16*m.vocab) }

func (m *bigram) SaveOutput(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return torch.SaveFile(filepath.Join(dir, "weights.safetensors"), map[string]*torch.Tensor{"emb": m.emb, "out": m.out}, nil)
}

func (m *bigram) LoadOutput(dir string) error {
	w, err := torch.LoadFile(filepath.Join(dir, "weights.safetensors"), torch.CPU)
	if err != nil {
		return err
	}
	defer freeAll(w)
	if err := m.emb.CopyFrom(w["emb"]); err != nil {
		return err
	}
	return m.out.CopyFrom(w["out"])
}

func (m *bigram) MergeAdapter() error { return nil }

func (m *bigram) Decoder() *decoder.Model { return nil }

func (m *bigram) Free() {
	m.emb.Free()
	m.out.Free()
}

func bigramBuilder(cfg *Config, dev torch.Device) (Model, error) {
	return newBigram(512, cfg.Seed), nil
}

// fixture writes a tokenizer and small JSONL sources into dir.
func fixture(t testing.TB, dir string) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	words := strings.Fields("the spec says an assistant should be honest about what it knows and explain why it acts " +
		"rules matter because people rely on them agents must stay within their permissions and ask before drastic steps")
	var docs, corpus []string
	for i := 0; i < 80; i++ {
		n := 5 + r.IntN(40)
		ws := make([]string, n)
		for j := range ws {
			ws[j] = words[r.IntN(len(words))]
		}
		s := strings.Join(ws, " ")
		corpus = append(corpus, s)
		b, _ := json.Marshal(map[string]string{"text": fmt.Sprintf("doc %d: %s.", i, s)})
		docs = append(docs, string(b))
	}
	var chats []string
	for i := 0; i < 30; i++ {
		b, _ := json.Marshal(map[string]any{"messages": []map[string]string{
			{"role": "user", "content": fmt.Sprintf("question %d: %s?", i, corpus[i])},
			{"role": "assistant", "content": corpus[(i+1)%len(corpus)]},
		}})
		chats = append(chats, string(b))
	}
	tj, err := tokenizer.NewByteLevel(200, corpus, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"tokenizer.json": string(tj),
		"docs.jsonl":     strings.Join(docs, "\n") + "\n",
		"chats.jsonl":    strings.Join(chats, "\n") + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testConfig is a two-stage config over the fixture; extra lines are appended to [train].
func testConfig(dir, out, train string) string {
	return fmt.Sprintf(`name = "t"
out_dir = %q
seed = 11

[model]
init = { hidden_size = 16 }
tokenizer = %q
chat_template = "chatml"

[train]
seq_len = 32
micro_batch = 2
lr = 0.05
warmup_ratio = 0.1
weight_decay = 0.01
clip_grad_norm = 1.0
%s

[checkpoint]
every = 1
keep = 2

[log]
progress = "lines"

[[stages]]
name = "msm"
kind = "msm"
[stages.data]
val_fraction = 0.1
sources = [{ name = "docs", path = %q, kind = "documents" }]

[[stages]]
name = "aft"
kind = "aft"
[stages.data]
val_fraction = 0.1
sources = [{ name = "chats", path = %q, kind = "chats" }]
[stages.train]
lr = 0.02
seq_len = 160
`, out, filepath.Join(dir, "tokenizer.json"), train, filepath.Join(dir, "docs.jsonl"), filepath.Join(dir, "chats.jsonl"))
}
