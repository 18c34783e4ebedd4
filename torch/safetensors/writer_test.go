package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dirNames lists dir, so tests can see that no temporary file is left.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func specsOf(ts []Tensor) []Spec {
	out := make([]Spec, len(ts))
	for i, t := range ts {
		out[i] = Spec{t.Name, t.DType, t.Shape}
	}
	return out
}

func TestWriterStreamsInAnyOrder(t *testing.T) {
	dir := t.TempDir()
	tensors := testTensors()
	if err := Write(filepath.Join(dir, "a.safetensors"), tensors, nil); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(filepath.Join(dir, "b.safetensors"), specsOf(tensors), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range slices.Backward(tensors) {
		if err := w.WriteTensor(tt.Name, tt.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a.safetensors"))
	b, _ := os.ReadFile(filepath.Join(dir, "b.safetensors"))
	if !bytes.Equal(a, b) {
		t.Error("streaming in reverse order wrote a different file than Write")
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"a.safetensors", "b.safetensors"}) {
		t.Errorf("directory holds %q", got)
	}
	f, err := Open(filepath.Join(dir, "b.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tt := range tensors {
		got, err := f.Bytes(tt.Name)
		info, _ := f.Info(tt.Name)
		if err != nil || !bytes.Equal(got, tt.Data) || info.DType != tt.DType || !slices.Equal(info.Shape, tt.Shape) {
			t.Errorf("%s: read %s %v %x (%v), wrote %s %v %x", tt.Name, info.DType, info.Shape, got, err, tt.DType, tt.Shape, tt.Data)
		}
	}
}

func TestWriterErrors(t *testing.T) {
	u8 := func(name string, n int64) Spec { return Spec{name, U8, []int64{n}} }
	tests := []struct {
		name  string
		specs []Spec
		write func(w *Writer) error // nil: NewWriter itself must fail
		want  string
	}{
		{"duplicate spec", []Spec{u8("a", 1), u8("a", 1)}, nil, `duplicate tensor name "a"`},
		{"reserved name", []Spec{u8("__metadata__", 1)}, nil, "invalid tensor name"},
		{"unsupported dtype", []Spec{{"a", F8E4M3, []int64{1}}}, nil, "unsupported dtype"},
		{"unknown dtype", []Spec{{"a", "Q4", []int64{1}}}, nil, "unsupported dtype"},
		{"negative shape", []Spec{{"a", F32, []int64{-1}}}, nil, "bad shape"},
		{"unknown name", []Spec{u8("a", 1)}, func(w *Writer) error { return w.WriteTensor("b", []byte{1}) }, "not among"},
		{"wrong size", []Spec{u8("a", 2)}, func(w *Writer) error { return w.WriteTensor("a", []byte{1}) }, "has 1 bytes, its spec needs 2"},
		{"written twice", []Spec{u8("a", 1)}, func(w *Writer) error {
			w.WriteTensor("a", []byte{1})
			return w.WriteTensor("a", []byte{1})
		}, "written twice"},
		{"never written", []Spec{u8("a", 1), u8("b", 1)}, func(w *Writer) error {
			w.WriteTensor("b", []byte{1})
			return w.Close()
		}, `1 tensors never written, first "a"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "m.safetensors")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			w, err := NewWriter(path, tc.specs, nil)
			if tc.write == nil {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "safetensors: ") {
					t.Errorf("NewWriter error %v, want %q", err, tc.want)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if err := tc.write(w); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
					t.Errorf("error %v, want %q naming %s", err, tc.want, path)
				}
				w.Abort()
			}
			if old, _ := os.ReadFile(path); string(old) != "old" {
				t.Errorf("destination changed to %q", old)
			}
			if got := dirNames(t, dir); !slices.Equal(got, []string{"m.safetensors"}) {
				t.Errorf("directory holds %q, want the untouched destination only", got)
			}
		})
	}
}

func TestWriteToMissingDir(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "no", "m.safetensors"), nil, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want one wrapping os.ErrNotExist", err)
	}
}
