package shard

import (
	"path/filepath"
	"testing"
)

func benchShard(b *testing.B) (*Reader, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.msms")
	docs := genDocs(1, 2000, 2000, 151000, 4) // ~2M tokens, uint32
	writeShard(b, path, docs, WriterOptions{VocabSize: 151000, Sources: []string{"a", "b", "c", "d"}})
	r, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	return r, r.NumTokens()
}

// BenchmarkReadAll measures sequential decode throughput (tokens/s).
func BenchmarkReadAll(b *testing.B) {
	r, n := benchShard(b)
	defer r.Close()
	b.SetBytes(n * 4)
	b.ResetTimer()
	for b.Loop() {
		if err := r.Verify(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkDocRandom measures random document reads through the cache.
func BenchmarkDocRandom(b *testing.B) {
	r, _ := benchShard(b)
	defer r.Close()
	var tokens int64
	i := 0
	for b.Loop() {
		i = (i*7919 + 13) % r.NumDocs()
		d, err := r.Doc(i)
		if err != nil {
			b.Fatal(err)
		}
		tokens += int64(len(d.Tokens))
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}
