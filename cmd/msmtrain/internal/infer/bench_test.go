package infer

import (
	"fmt"
	"testing"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// benchConfig is the demo's model shape (configs/demo.toml) with a 1500-token vocabulary; testdata/generate_ref.py
// builds the same model in plain PyTorch for the reference figure.
var benchConfig = decoder.Config{ModelType: "qwen3", VocabSize: 1500, HiddenSize: 128, IntermediateSize: 384, NumLayers: 4,
	NumHeads: 4, NumKVHeads: 2, HeadDim: 32, RMSNormEps: 1e-6, RopeTheta: 10000, HiddenAct: "silu", TieWordEmbeddings: true}

// BenchmarkGenerate measures generated tokens per second with the KV cache: prompts of 32 tokens, 64 new tokens
// each (no stop token), greedy and sampled (temperature 1, top-p 0.9).
//
//	go test ./cmd/msmtrain/internal/infer -run - -bench Generate -benchtime 3x
//	python3 cmd/msmtrain/internal/infer/testdata/generate_ref.py   # the PyTorch eager reference
func BenchmarkGenerate(b *testing.B) {
	m, err := decoder.New(benchConfig, decoder.Options{DType: torch.Float32, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Free()
	const promptLen, maxNew = 32, 64
	for _, mode := range []struct {
		name string
		s    Sampling
	}{{"greedy", Sampling{}}, {"sample", Sampling{Temperature: 1, TopP: 0.9}}} {
		for _, batch := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/batch%d", mode.name, batch), func(b *testing.B) {
				reqs := make([]Request, batch)
				for i := range reqs {
					p := make([]int, promptLen)
					for k := range p {
						p[k] = (7*i + 13*k + 1) % benchConfig.VocabSize
					}
					reqs[i] = Request{Prompt: p, Seed: uint64(i)}
				}
				o := GenOptions{Sampling: mode.s, MaxNew: maxNew}
				b.ResetTimer()
				n := 0
				for i := 0; i < b.N; i++ {
					if err := GenerateBatch(m, reqs, o, func(c Completion) error { n += len(c.Tokens); return nil }); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
				b.ReportMetric(float64(torch.NumThreads()), "threads")
			})
		}
	}
}
