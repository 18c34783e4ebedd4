package safetensors

import (
	"fmt"
	"path/filepath"
	"testing"
)

// benchFile writes a checkpoint of n tensors of size bytes each.
func benchFile(b *testing.B, n, size int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.safetensors")
	specs := make([]Spec, n)
	for i := range specs {
		specs[i] = Spec{fmt.Sprintf("layers.%03d.weight", i), BF16, []int64{int64(size / 2)}}
	}
	w, err := NewWriter(path, specs, map[string]string{"format": "pt"})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, s := range specs {
		if err := w.WriteTensor(s.Name, data); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkOpenReadAll opens a ~200 MB file and copies every byte out of the
// zero-copy views (page cache warm after the first iteration).
func BenchmarkOpenReadAll(b *testing.B) {
	const n, size = 100, 2 << 20
	path := benchFile(b, n, size)
	b.SetBytes(n * size)
	b.ResetTimer()
	buf := make([]byte, size)
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		for _, name := range f.Names() {
			data, err := f.Bytes(name)
			if err != nil {
				b.Fatal(err)
			}
			copy(buf, data) // as a copy to a device staging buffer would

		}
		f.Close()
	}
}

// BenchmarkWrite streams a ~200 MB file through Writer, fsync included.
func BenchmarkWrite(b *testing.B) {
	const n, size = 100, 2 << 20
	b.SetBytes(n * size)
	for b.Loop() {
		benchFile(b, n, size)
	}
}

// BenchmarkBF16FromF32 converts 1 Mi floats.
func BenchmarkBF16FromF32(b *testing.B) {
	in := make([]float32, 1<<20)
	for i := range in {
		in[i] = float32(i) * 1e-3
	}
	out := make([]uint16, len(in))
	b.SetBytes(4 << 20)
	for b.Loop() {
		for i, x := range in {
			out[i] = BF16FromF32(x)
		}
	}
}
