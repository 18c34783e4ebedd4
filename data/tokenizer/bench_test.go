package tokenizer

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// benchTexts returns English prose (the Go specification, tags stripped)
// and Go code (net/http's server.go) from the Go installation.
func benchText(tb testing.TB, kind string) string {
	tb.Helper()
	p := filepath.Join(runtime.GOROOT(), "doc", "go_spec.html")
	if kind == "code" {
		p = filepath.Join(runtime.GOROOT(), "src", "net", "http", "server.go")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Skipf("benchmark text missing from the Go installation: %v", err)
	}
	s := string(b)
	if kind == "prose" {
		s = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(s, "")
		s = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&", "&quot;", `"`).Replace(s)
	}
	return s
}

var rustRates sync.Map // key -> tokens/s of the Rust reference

// rustRate times the Rust reference's encode on text (one core) once per key.
func rustRate(b *testing.B, key, path, text string) float64 {
	if v, ok := rustRates.Load(key); ok {
		return v.(float64)
	}
	res := runRef(b, path, refRequest{Bench: &refBench{Text: text, Seconds: 2}})
	r := float64(res.Bench.Tokens) / res.Bench.Seconds
	rustRates.Store(key, r)
	return r
}

// BenchmarkEncode measures Encode on one goroutine, and reports beside it
// the Rust library encoding the same text (rust-tok/s) in the same run.
//
//	go test -run XXX -bench Encode -benchtime 3s ./data/tokenizer
func BenchmarkEncode(b *testing.B) {
	for _, family := range []string{"qwen3", "llama3"} {
		for _, kind := range []string{"prose", "code"} {
			b.Run(family+"/"+kind, func(b *testing.B) {
				path := realTokenizer(b, family)
				tok, err := Load(path)
				if err != nil {
					b.Fatal(err)
				}
				text := benchText(b, kind)
				n := len(tok.Encode(text))
				rust := rustRate(b, family+kind, path, text)
				b.SetBytes(int64(len(text)))
				b.ResetTimer()
				for b.Loop() {
					tok.Encode(text)
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
				b.ReportMetric(rust, "rust-tok/s")
			})
		}
	}
}

// BenchmarkEncodeBatch measures EncodeBatch over all cores.
func BenchmarkEncodeBatch(b *testing.B) {
	tok, err := Load(realTokenizer(b, "qwen3"))
	if err != nil {
		b.Fatal(err)
	}
	text := benchText(b, "prose")
	var docs []string
	for i := 0; i+4096 <= len(text); i += 4096 {
		docs = append(docs, text[i:i+4096])
	}
	n := 0
	for _, d := range docs {
		n += len(tok.Encode(d))
	}
	b.SetBytes(int64(len(docs) * 4096))
	for b.Loop() {
		tok.EncodeBatch(docs)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkDecode measures Decode of a long document.
func BenchmarkDecode(b *testing.B) {
	tok, err := Load(realTokenizer(b, "qwen3"))
	if err != nil {
		b.Fatal(err)
	}
	text := benchText(b, "prose")
	ids := tok.Encode(text)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Decode(ids)
	}
	b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}
