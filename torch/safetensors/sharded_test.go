package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// layers returns n F32 tensors of 16 bytes each, named like a model's.
func layers(n int) []Tensor {
	var ts []Tensor
	for i := range n {
		ts = append(ts, Tensor{
			Name: fmt.Sprintf("model.layers.%d.weight", i), DType: F32, Shape: []int64{2, 2},
			Data: Float32sToBytes([]float32{float32(i), 1, 2, float32(-i)}),
		})
	}
	return ts
}

func TestWriteShardedRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		maxBytes int64
		files    []string
	}{
		{"single", 3, 1 << 20, []string{"model.safetensors"}},
		{"exact fit", 3, 48, []string{"model.safetensors"}},
		{"three shards", 5, 32, []string{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
			"model-00003-of-00003.safetensors", "model.safetensors.index.json"}},
		{"tensor over the limit", 2, 8, []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
			"model.safetensors.index.json"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tensors := layers(tc.n)
			meta := map[string]string{"format": "pt"}
			files, err := WriteSharded(dir, "model", tensors, tc.maxBytes, meta)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(files, tc.files) || !slices.Equal(dirNames(t, dir), tc.files) {
				t.Errorf("files %q, directory %q, want %q", files, dirNames(t, dir), tc.files)
			}
			if len(files) > 1 {
				checkIndex(t, dir, tensors, files[:len(files)-1], tc.maxBytes)
			}
			m, err := OpenModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if len(m.Names()) != len(tensors) || !maps.Equal(m.Metadata(), meta) {
				t.Errorf("Names %q, Metadata %q", m.Names(), m.Metadata())
			}
			for _, tt := range tensors {
				b, err := m.Bytes(tt.Name)
				info, _ := m.Info(tt.Name)
				if err != nil || !bytes.Equal(b, tt.Data) || !slices.Equal(info.Shape, tt.Shape) {
					t.Errorf("%s: %x %v %v, wrote %x", tt.Name, b, info, err, tt.Data)
				}
			}
		})
	}
}

// checkIndex decodes the index as Hugging Face lays it out and checks it
// against the shards actually on disk.
func checkIndex(t *testing.T, dir string, tensors []Tensor, shards []string, maxBytes int64) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&idx); err != nil {
		t.Fatalf("index: %v\n%s", err, raw)
	}
	var total int64
	for _, tt := range tensors {
		total += int64(len(tt.Data))
	}
	if idx.Metadata["total_size"] != float64(total) || len(idx.Metadata) != 1 {
		t.Errorf("index metadata %v, want total_size %d", idx.Metadata, total)
	}
	if len(idx.WeightMap) != len(tensors) {
		t.Errorf("weight_map has %d entries, want %d", len(idx.WeightMap), len(tensors))
	}
	for _, s := range shards {
		f, err := Open(filepath.Join(dir, s))
		if err != nil {
			t.Fatal(err)
		}
		var size int64
		for _, n := range f.Names() {
			info, _ := f.Info(n)
			size += info.Size
			if idx.WeightMap[n] != s {
				t.Errorf("weight_map[%q] = %q, but %s holds it", n, idx.WeightMap[n], s)
			}
		}
		if size > maxBytes && len(f.Names()) > 1 {
			t.Errorf("%s holds %d bytes in %d tensors, over the %d limit", s, size, len(f.Names()), maxBytes)
		}
		f.Close()
	}
}

func TestWriteShardedReplacesOtherLayout(t *testing.T) {
	dir := t.TempDir()
	steps := []struct {
		max   int64
		files []string
	}{
		{16, []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"}},
		{1 << 20, []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors"}},
		{16, []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"}},
	}
	for i, s := range steps {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			tensors := layers(2)
			tensors[0].Data = Float32sToBytes([]float32{float32(i), 0, 0, 0})
			if _, err := WriteSharded(dir, "model", tensors, s.max, nil); err != nil {
				t.Fatal(err)
			}
			if got := dirNames(t, dir); !slices.Equal(got, s.files) {
				t.Errorf("directory %q, want %q", got, s.files)
			}
			m, err := OpenModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if b, _ := m.Bytes(tensors[0].Name); !bytes.Equal(b, tensors[0].Data) {
				t.Errorf("OpenModel reads a stale checkpoint: %x", b)
			}
		})
	}
}

func TestOpenModelLayouts(t *testing.T) {
	write := func(t *testing.T, dir, name string, ts []Tensor) {
		t.Helper()
		if err := Write(filepath.Join(dir, name), ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	index := func(t *testing.T, dir, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ts := layers(2)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string // error substring; "" for success
		isErr error
		names int
	}{
		{"adapter file alone", func(t *testing.T, dir string) { write(t, dir, "adapter_model.safetensors", ts) }, "", nil, 2},
		{"empty dir", func(t *testing.T, dir string) {}, "no model.safetensors", fs.ErrNotExist, 0},
		{"ambiguous", func(t *testing.T, dir string) {
			write(t, dir, "a.safetensors", ts[:1])
			write(t, dir, "b.safetensors", ts[1:])
		}, "cannot tell which", nil, 0},
		{"missing shard", func(t *testing.T, dir string) {
			write(t, dir, "s1.safetensors", ts[:1])
			index(t, dir, `{"weight_map":{"model.layers.0.weight":"s1.safetensors","model.layers.1.weight":"s2.safetensors"}}`)
		}, "shard s2.safetensors: no such file", nil, 0},
		{"tensor not in its shard", func(t *testing.T, dir string) {
			write(t, dir, "s1.safetensors", ts[:1])
			index(t, dir, `{"weight_map":{"model.layers.0.weight":"s1.safetensors","other":"s1.safetensors"}}`)
		}, `tensor "other" in s1.safetensors, which does not hold it`, nil, 0},
		{"shard path escapes", func(t *testing.T, dir string) {
			index(t, dir, `{"weight_map":{"x":"../x.safetensors"}}`)
		}, "not a file name", nil, 0},
		{"bad index json", func(t *testing.T, dir string) { index(t, dir, `{"weight_map":`) }, "bad index JSON", nil, 0},
		{"empty weight_map", func(t *testing.T, dir string) { index(t, dir, `{"metadata":{}}`) }, "no weight_map", nil, 0},
		{"tensor in two shards", func(t *testing.T, dir string) {
			write(t, dir, "s1.safetensors", ts)
			write(t, dir, "s2.safetensors", ts[:1])
			index(t, dir, `{"weight_map":{"model.layers.0.weight":"s1.safetensors","model.layers.1.weight":"s2.safetensors"}}`)
		}, "is also in", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			m, err := OpenModel(dir)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if len(m.Names()) != tc.names {
					t.Errorf("Names() = %q", m.Names())
				}
				return
			}
			if err == nil {
				m.Close()
				t.Fatal("OpenModel succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q, want %q naming a file in the directory", err, tc.want)
			}
			if tc.isErr != nil && !errors.Is(err, tc.isErr) {
				t.Errorf("error %v does not wrap %v", err, tc.isErr)
			}
		})
	}
}

func TestShardedAdapterPrefix(t *testing.T) {
	dir := t.TempDir()
	files, err := WriteSharded(dir, "adapter_model", layers(3), 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	if files[0] != "adapter_model-00001-of-00003.safetensors" || files[3] != "adapter_model.safetensors.index.json" {
		t.Errorf("files %q", files)
	}
	m, err := OpenIndex(filepath.Join(dir, files[3]))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.Names()) != 3 || len(m.Files()) != 3 {
		t.Errorf("Names %q Files %q", m.Names(), m.Files())
	}
	if _, err := WriteSharded(dir, "a/b", nil, 16, nil); err == nil {
		t.Error("prefix with a slash accepted")
	}
	if _, err := WriteSharded(dir, "m", nil, 0, nil); err == nil {
		t.Error("maxShardBytes 0 accepted")
	}
}
