package loader

import (
	"testing"
)

// BenchmarkBuild measures batch building on one goroutine (tokens/s of
// document slots filled), from data decoded out of warm shard files.
func BenchmarkBuild(b *testing.B) {
	ds, _ := makeDataset(b, 3000, 100, 3000, 0, 0) // ~4.6M tokens
	for _, mode := range []Mode{Pack, Pad} {
		b.Run(string(mode), func(b *testing.B) {
			l := newLoader(b, ds, Config{SeqLen: 4096, Rows: 8, Mode: mode, Seed: 1}, nil)
			g := &gen{l: l, pk: &packer{cfg: l.cfg}}
			s := l.initial()
			tokens, slots := 0, 0
			b.ResetTimer()
			for b.Loop() {
				bt, err := g.next(s)
				if err != nil {
					b.Fatal(err)
				}
				s = bt.Next
				tokens += bt.Tokens
				slots += len(bt.Input)
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(float64(tokens)/float64(slots), "fill")
		})
	}
}

// BenchmarkNext measures Next with the background producer.
func BenchmarkNext(b *testing.B) {
	ds, _ := makeDataset(b, 3000, 100, 3000, 0, 0)
	l := newLoader(b, ds, Config{SeqLen: 4096, Rows: 8, Seed: 1}, nil)
	tokens := 0
	b.ResetTimer()
	for b.Loop() {
		bt, err := l.Next()
		if err != nil {
			b.Fatal(err)
		}
		tokens += bt.Tokens
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}
