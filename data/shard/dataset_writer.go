package shard

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/msmtrain/msmtrain/data/atomicfile"
)

// DefaultShardTokens is the default number of tokens per shard file.
const DefaultShardTokens = 1 << 28

// DatasetOptions configures a DatasetWriter.
type DatasetOptions struct {
	TokenizerHash string
	VocabSize     int
	// Sources names the source ids (id = index).
	Sources []string
	// ShardTokens starts a new shard file once a shard holds this many
	// tokens (DefaultShardTokens when 0).
	ShardTokens int64
	// BlockTokens is passed to each shard Writer.
	BlockTokens int
}

// DatasetWriter writes the shards and manifest of a dataset directory. The
// manifest is written last, atomically, so a directory with a manifest holds
// a complete dataset.
type DatasetWriter struct {
	dir string
	o   DatasetOptions
	w   *Writer
	cur ShardInfo
	m   Manifest
}

// CreateDataset starts a dataset in dir, which is created if needed and must
// not already hold a manifest.
func CreateDataset(dir string, o DatasetOptions) (*DatasetWriter, error) {
	if o.ShardTokens <= 0 {
		o.ShardTokens = DefaultShardTokens
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("shard: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestName)); err == nil {
		return nil, fmt.Errorf("shard: create dataset %s: a dataset is already there", dir)
	}
	dw := &DatasetWriter{dir: dir, o: o, m: Manifest{FormatVersion: ManifestVersion, ShardVersion: Version,
		TokenizerHash: o.TokenizerHash, VocabSize: o.VocabSize, Shards: []ShardInfo{}}}
	for _, s := range o.Sources {
		dw.m.Sources = append(dw.m.Sources, SourceCount{Name: s})
	}
	return dw, nil
}

// Add appends a document (see Writer.Add).
func (dw *DatasetWriter) Add(tokens []int32, mask []bool, source int) error {
	if dw.w == nil {
		name := fmt.Sprintf("shard-%05d.msms", len(dw.m.Shards))
		w, err := Create(filepath.Join(dw.dir, name), WriterOptions{VocabSize: dw.o.VocabSize,
			Sources: dw.o.Sources, BlockTokens: dw.o.BlockTokens})
		if err != nil {
			return err
		}
		dw.w, dw.cur = w, ShardInfo{File: name}
	}
	if err := dw.w.Add(tokens, mask, source); err != nil {
		return err
	}
	trained := int64(0)
	for _, m := range mask {
		if m {
			trained++
		}
	}
	n := int64(len(tokens))
	dw.cur.Docs++
	dw.cur.Tokens += n
	dw.cur.Trained += trained
	s := &dw.m.Sources[source]
	s.Docs, s.Tokens, s.Trained = s.Docs+1, s.Tokens+n, s.Trained+trained
	if dw.cur.Tokens >= dw.o.ShardTokens {
		return dw.closeShard()
	}
	return nil
}

func (dw *DatasetWriter) closeShard() error {
	if dw.w == nil {
		return nil
	}
	w := dw.w
	dw.w = nil
	if err := w.Close(); err != nil {
		return err
	}
	sum, size, err := FileSHA256(w.path)
	if err != nil {
		return err
	}
	dw.cur.SHA256, dw.cur.Bytes = sum, size
	dw.m.Shards = append(dw.m.Shards, dw.cur)
	dw.m.Docs += dw.cur.Docs
	dw.m.Tokens += dw.cur.Tokens
	dw.m.Trained += dw.cur.Trained
	return nil
}

// Close finishes the last shard and writes the manifest, filling in the
// shard and source counts; meta supplies PrepConfig, PrepHash and Inputs.
func (dw *DatasetWriter) Close(meta Manifest) (*Manifest, error) {
	if err := dw.closeShard(); err != nil {
		return nil, err
	}
	dw.m.PrepConfig, dw.m.PrepHash, dw.m.Inputs = meta.PrepConfig, meta.PrepHash, meta.Inputs
	b, err := json.MarshalIndent(&dw.m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("shard: manifest: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dw.dir, ManifestName), append(b, '\n')); err != nil {
		return nil, err
	}
	m := dw.m
	return &m, nil
}

// Abort discards the shard being written; finished shards stay on disk
// without a manifest.
func (dw *DatasetWriter) Abort() {
	if dw.w != nil {
		dw.w.Abort()
		dw.w = nil
	}
}
