package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Model is a checkpoint directory: one safetensors file or several shards
// tied together by an index, read as one set of tensors.
type Model struct {
	files []*File
	where map[string]*File // tensor name -> the file holding it
	names []string         // sorted
}

// OpenModel opens the checkpoint in dir, looking in order for
//
//   - model.safetensors,
//   - model.safetensors.index.json, whose "weight_map" maps each tensor name to
//     a shard file in dir (Hugging Face sharded layout),
//   - the only *.safetensors file in dir (e.g. PEFT's adapter_model.safetensors).
//
// Every file is mapped and validated. An index naming a missing shard, or a
// tensor its shard lacks, is a *HeaderError naming the index.
func OpenModel(dir string) (*Model, error) {
	single := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(single); err == nil {
		return openFiles([]string{single})
	}
	index := filepath.Join(dir, "model.safetensors.index.json")
	if _, err := os.Stat(index); err == nil {
		return openIndex(index)
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("safetensors: no model.safetensors, model.safetensors.index.json or *.safetensors in %s: %w", dir, fs.ErrNotExist)
	case 1:
		return openFiles(matches)
	}
	return nil, fmt.Errorf("safetensors: %d *.safetensors files and no model.safetensors.index.json in %s: cannot tell which to load", len(matches), dir)
}

// OpenIndex opens the sharded checkpoint described by the index file at path
// (e.g. adapter_model.safetensors.index.json).
func OpenIndex(path string) (*Model, error) { return openIndex(path) }

func openIndex(path string) (*Model, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, headerErr(path, "bad index JSON: %v", err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, headerErr(path, "index has no weight_map entries")
	}
	var shards []string
	for name, shard := range idx.WeightMap {
		if shard == "" || filepath.Base(shard) != shard || shard == ".." || strings.ContainsRune(shard, '/') {
			return nil, headerErr(path, "tensor %q: shard %q is not a file name in the index's directory", name, shard)
		}
		if !slices.Contains(shards, shard) {
			shards = append(shards, shard)
		}
	}
	slices.Sort(shards)
	dir := filepath.Dir(path)
	paths := make([]string, len(shards))
	for i, s := range shards {
		paths[i] = filepath.Join(dir, s)
		if _, err := os.Stat(paths[i]); err != nil {
			return nil, &HeaderError{File: path, Reason: fmt.Sprintf("shard %s: %v", s, errors.Unwrap(err))}
		}
	}
	m, err := openFiles(paths)
	if err != nil {
		return nil, err
	}
	for name, shard := range idx.WeightMap {
		if f, ok := m.where[name]; !ok || filepath.Base(f.path) != shard {
			m.Close()
			return nil, headerErr(path, "weight_map puts tensor %q in %s, which does not hold it", name, shard)
		}
	}
	return m, nil
}

// openFiles opens and merges the given files; a name held twice is an error.
func openFiles(paths []string) (*Model, error) {
	m := &Model{where: map[string]*File{}}
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.files = append(m.files, f)
		for _, name := range f.h.names {
			if prev, dup := m.where[name]; dup {
				m.Close()
				return nil, headerErr(p, "tensor %q is also in %s", name, prev.path)
			}
			m.where[name] = f
			m.names = append(m.names, name)
		}
	}
	slices.Sort(m.names)
	return m, nil
}

// Names returns all tensor names in sorted order. The slice is a fresh copy.
func (m *Model) Names() []string { return slices.Clone(m.names) }

// Info returns the description of the named tensor; Info.File says which
// shard holds it.
func (m *Model) Info(name string) (Info, bool) {
	f, ok := m.where[name]
	if !ok {
		return Info{}, false
	}
	return f.Info(name)
}

// Bytes returns a zero-copy view of the named tensor's data, valid until
// Close. See [File.Bytes].
func (m *Model) Bytes(name string) ([]byte, error) {
	f, ok := m.where[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return f.Bytes(name)
}

// Metadata returns the __metadata__ of the first file (shards written by
// this package and by transformers carry the same metadata in each shard).
func (m *Model) Metadata() map[string]string {
	if len(m.files) == 0 {
		return nil
	}
	return m.files[0].Metadata()
}

// Files returns the paths of the files the model was read from, in order.
func (m *Model) Files() []string {
	out := make([]string, len(m.files))
	for i, f := range m.files {
		out[i] = f.path
	}
	return out
}

// Close unmaps every file of the model, returning the first error.
func (m *Model) Close() error {
	var first error
	for _, f := range m.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.files = nil
	return first
}
