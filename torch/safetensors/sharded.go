package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/msmtrain/msmtrain/data/atomicfile"
)

// ShardedWriter writes a checkpoint directory in the Hugging Face layout,
// streaming like [Writer]: tensors are assigned to shards up front, then
// each tensor's bytes are written once, in any order.
//
// When every tensor fits in one shard the result is the single file
// <prefix>.safetensors; otherwise it is <prefix>-00001-of-0000N.safetensors
// ... plus <prefix>.safetensors.index.json holding
// {"metadata":{"total_size":bytes},"weight_map":{name: shard file}}.
// Close writes the index last and then removes the other layout's file of
// the same prefix if one is left from an earlier save (a stale
// <prefix>.safetensors would otherwise shadow the index for readers).
type ShardedWriter struct {
	dir, prefix string
	files       []string // shard base names
	shards      []*Writer
	where       map[string]int // tensor name -> shard
	total       int64
}

// NewShardedWriter plans the shards for specs in dir. Tensors fill shards in
// the order given; a new shard starts when the next tensor would push the
// current one past maxShardBytes of data (a tensor larger than that gets a
// shard of its own). meta is stored in every shard's header.
func NewShardedWriter(dir, prefix string, specs []Spec, maxShardBytes int64, meta map[string]string) (*ShardedWriter, error) {
	if maxShardBytes <= 0 {
		return nil, fmt.Errorf("safetensors: maxShardBytes %d must be positive", maxShardBytes)
	}
	if prefix == "" || filepath.Base(prefix) != prefix {
		return nil, fmt.Errorf("safetensors: shard prefix %q must be a plain file name", prefix)
	}
	w := &ShardedWriter{dir: dir, prefix: prefix, where: map[string]int{}}
	var groups [][]Spec
	var cur int64
	for _, s := range specs {
		n, ok := numel(s.Shape, max(s.DType.Size(), 1))
		if !ok {
			return nil, fmt.Errorf("safetensors: tensor %q: bad shape %v", s.Name, s.Shape)
		}
		size := n * int64(s.DType.Size())
		if len(groups) == 0 || (cur > 0 && cur+size > maxShardBytes) {
			groups = append(groups, nil)
			cur = 0
		}
		if _, dup := w.where[s.Name]; dup {
			return nil, fmt.Errorf("safetensors: duplicate tensor name %q", s.Name)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], s)
		w.where[s.Name] = len(groups) - 1
		cur += size
		w.total += size
	}
	if len(groups) == 0 {
		groups = append(groups, nil)
	}
	for i, g := range groups {
		name := prefix + ".safetensors"
		if len(groups) > 1 {
			name = fmt.Sprintf("%s-%05d-of-%05d.safetensors", prefix, i+1, len(groups))
		}
		sw, err := NewWriter(filepath.Join(dir, name), g, meta)
		if err != nil {
			w.Abort()
			return nil, err
		}
		w.files = append(w.files, name)
		w.shards = append(w.shards, sw)
	}
	return w, nil
}

// Files returns the base names of the files the writer produces, in order;
// the index file, if any, is not included.
func (w *ShardedWriter) Files() []string { return append([]string(nil), w.files...) }

// WriteTensor writes the data of the named tensor to its shard.
func (w *ShardedWriter) WriteTensor(name string, data []byte) error {
	i, ok := w.where[name]
	if !ok {
		return fmt.Errorf("%w: %q is not among the tensors given to NewShardedWriter", ErrNotFound, name)
	}
	return w.shards[i].WriteTensor(name, data)
}

// Close finishes every shard, writes the index when there are several and
// removes the stale file of the other layout. On error the shards not yet
// renamed into place are removed.
func (w *ShardedWriter) Close() error {
	for i, s := range w.shards {
		if err := s.Close(); err != nil {
			w.Abort()
			return err
		}
		w.shards[i] = nil
	}
	single := filepath.Join(w.dir, w.prefix+".safetensors")
	index := single + ".index.json"
	stale := index
	if len(w.files) > 1 {
		idx := struct {
			Metadata  map[string]int64  `json:"metadata"`
			WeightMap map[string]string `json:"weight_map"`
		}{map[string]int64{"total_size": w.total}, map[string]string{}}
		for name, i := range w.where {
			idx.WeightMap[name] = w.files[i]
		}
		data, err := json.MarshalIndent(idx, "", "  ")
		if err != nil {
			return fmt.Errorf("safetensors: %s: %w", index, err)
		}
		if err := atomicfile.WriteFile(index, append(data, '\n')); err != nil {
			return fmt.Errorf("safetensors: %w", err)
		}
		stale = single
	}
	if err := os.Remove(stale); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("safetensors: removing stale %w", err)
	}
	return nil
}

// Abort discards every shard not yet renamed into place.
func (w *ShardedWriter) Abort() error {
	var errs []error
	for _, s := range w.shards {
		if s != nil {
			errs = append(errs, s.Abort())
		}
	}
	return errors.Join(errs...)
}

// WriteSharded writes tensors to dir in the Hugging Face layout (see
// [ShardedWriter]) and returns the base names of the files written, the index
// last when there is one. prefix is "model" for full checkpoints and
// "adapter_model" for PEFT adapters.
func WriteSharded(dir, prefix string, tensors []Tensor, maxShardBytes int64, meta map[string]string) ([]string, error) {
	specs := make([]Spec, len(tensors))
	for i, t := range tensors {
		specs[i] = Spec{Name: t.Name, DType: t.DType, Shape: t.Shape}
	}
	w, err := NewShardedWriter(dir, prefix, specs, maxShardBytes, meta)
	if err != nil {
		return nil, err
	}
	for _, t := range tensors {
		if err := w.WriteTensor(t.Name, t.Data); err != nil {
			w.Abort()
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	files := w.Files()
	if len(files) > 1 {
		files = append(files, prefix+".safetensors.index.json")
	}
	return files, nil
}
