package prep

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkRun measures end-to-end prep throughput (input MB/s) on all
// cores: ~8 MB of JSONL documents through the tiny byte-level tokenizer.
func BenchmarkRun(b *testing.B) {
	tokPath, _ := setup(b)
	dir := b.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	rng := rand.New(rand.NewPCG(1, 1))
	var sb strings.Builder
	for i := 0; sb.Len() < 8<<20; i++ {
		fmt.Fprintf(&sb, "{\"text\": %q}\n", fmt.Sprint(i)+" "+sentence(rng, 100+rng.IntN(400)))
	}
	if err := os.WriteFile(in, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(sb.Len()))
	var tokens int64
	n := 0
	for b.Loop() {
		cfg := baseConfig(dir, tokPath, Source{Name: "s", Path: in})
		cfg.Workers = 0
		cfg.OutDir = filepath.Join(dir, fmt.Sprint("out", n))
		n++
		s, err := Run(context.Background(), cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		tokens += s.TrainTokens + s.ValTokens
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}
