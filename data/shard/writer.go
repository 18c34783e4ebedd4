package shard

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/msmtrain/msmtrain/data/atomicfile"
)

// DefaultBlockTokens is the default number of tokens per block: large enough
// for good compression, small enough that reading one document decodes
// about half a megabyte.
const DefaultBlockTokens = 1 << 17

// WriterOptions configures a shard Writer.
type WriterOptions struct {
	// VocabSize is the tokenizer's vocabulary size; every token must be
	// below it. Up to 65536 tokens are stored in 2 bytes, else 4.
	VocabSize int
	// Sources names the source ids that Add accepts (id = index).
	Sources []string
	// BlockTokens is the target number of tokens per block
	// (DefaultBlockTokens when 0). Documents never straddle blocks, so a
	// longer document makes one larger block.
	BlockTokens int
}

// Writer streams documents into a new shard file. Memory is bounded by one
// block plus eight bytes per document. The file appears under its name only
// when Close succeeds.
type Writer struct {
	path string
	f    *atomicfile.File
	bw   *bufio.Writer
	o    WriterOptions
	h    header
	off  uint64

	raw    []byte // tokens of the open block, encoded
	mask   []byte // mask bits of the open block
	ntok   int    // tokens in the open block
	first  uint64 // first doc of the open block
	blocks []blockEntry
	docLen []uint32
	docSrc []uint32
	comp   []byte
	err    error
}

var (
	encOnce sync.Once
	encoder *zstd.Encoder
)

func zstdEncoder() *zstd.Encoder {
	encOnce.Do(func() {
		// Options are constants; NewWriter cannot fail with them.
		encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	})
	return encoder
}

// Create starts a shard at path, writing to a temporary file beside it.
func Create(path string, o WriterOptions) (*Writer, error) {
	if o.VocabSize <= 0 || o.VocabSize > 1<<31-1 {
		return nil, fmt.Errorf("shard: create %s: vocab size %d out of range", path, o.VocabSize)
	}
	if len(o.Sources) > MaxSources {
		return nil, fmt.Errorf("shard: create %s: %d sources, at most %d", path, len(o.Sources), MaxSources)
	}
	for _, s := range o.Sources {
		if len(s) > 1<<16-1 {
			return nil, fmt.Errorf("shard: create %s: source name of %d bytes is too long", path, len(s))
		}
	}
	if o.BlockTokens <= 0 {
		o.BlockTokens = DefaultBlockTokens
	}
	h := header{vocabSize: uint32(o.VocabSize), numSources: uint32(len(o.Sources))}
	if o.VocabSize > 1<<16 {
		h.flags |= FlagUint32
	}
	if rawLen(o.BlockTokens, h.width()) > MaxBlockBytes {
		return nil, fmt.Errorf("shard: create %s: %d tokens per block is too many", path, o.BlockTokens)
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, fmt.Errorf("shard: create %s: %w", path, err)
	}
	w := &Writer{path: path, f: f, bw: bufio.NewWriterSize(f, 1<<20), o: o, h: h, off: HeaderSize}
	if _, err := w.bw.Write(make([]byte, HeaderSize)); err != nil {
		w.Abort()
		return nil, fmt.Errorf("shard: create %s: %w", path, err)
	}
	return w, nil
}

// Add appends one document: its tokens, the loss mask (true = trained; same
// length as tokens) and its source id. Empty documents are rejected.
func (w *Writer) Add(tokens []int32, mask []bool, source int) error {
	if w.err != nil {
		return w.err
	}
	switch {
	case len(tokens) == 0:
		return fmt.Errorf("shard: %s: empty document", w.path)
	case len(mask) != len(tokens):
		return fmt.Errorf("shard: %s: %d mask bits for %d tokens", w.path, len(mask), len(tokens))
	case source < 0 || source >= len(w.o.Sources):
		return fmt.Errorf("shard: %s: source id %d, have %d sources", w.path, source, len(w.o.Sources))
	case rawLen(len(tokens), w.h.width()) > MaxBlockBytes:
		return fmt.Errorf("shard: %s: document of %d tokens is too long", w.path, len(tokens))
	}
	for _, t := range tokens {
		if t < 0 || uint32(t) >= w.h.vocabSize {
			return fmt.Errorf("shard: %s: token %d outside vocabulary of %d", w.path, t, w.h.vocabSize)
		}
	}
	if w.ntok > 0 && w.ntok+len(tokens) > w.o.BlockTokens {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.h.width() == 2 {
		for _, t := range tokens {
			w.raw = append(w.raw, byte(t), byte(t>>8))
		}
	} else {
		for _, t := range tokens {
			w.raw = binary.LittleEndian.AppendUint32(w.raw, uint32(t))
		}
	}
	end := w.ntok + len(tokens)
	for len(w.mask) < (end+7)/8 {
		w.mask = append(w.mask, 0)
	}
	for i, m := range mask {
		if m {
			j := w.ntok + i
			w.mask[j>>3] |= 1 << (j & 7)
		}
	}
	w.ntok += len(tokens)
	w.docLen = append(w.docLen, uint32(len(tokens)))
	w.docSrc = append(w.docSrc, uint32(source))
	w.h.numDocs++
	w.h.numTokens += uint64(len(tokens))
	if w.ntok >= w.o.BlockTokens {
		return w.flush()
	}
	return nil
}

// Docs returns the number of documents added so far.
func (w *Writer) Docs() int64 { return int64(w.h.numDocs) }

// Tokens returns the number of tokens added so far.
func (w *Writer) Tokens() int64 { return int64(w.h.numTokens) }

// flush compresses the open block and writes it.
func (w *Writer) flush() error {
	if w.ntok == 0 {
		return nil
	}
	raw := append(w.raw, w.mask...)
	w.comp = zstdEncoder().EncodeAll(raw, w.comp[:0])
	e := blockEntry{offset: w.off, compLen: uint32(len(w.comp)), rawLen: uint32(len(raw)),
		firstDoc: w.first, numTokens: uint32(w.ntok), crc: crc32c(raw)}
	if _, err := w.bw.Write(w.comp); err != nil {
		w.err = fmt.Errorf("shard: write %s: %w", w.path, err)
		return w.err
	}
	w.blocks = append(w.blocks, e)
	w.off += uint64(len(w.comp))
	w.first = w.h.numDocs
	w.raw, w.mask, w.ntok = raw[:0], w.mask[:0], 0
	return nil
}

// Close writes the last block, the index and the header, syncs the file and
// renames it into place. On error nothing appears at the path.
func (w *Writer) Close() error {
	if w.f == nil {
		return w.err
	}
	err := w.finish()
	if err != nil {
		w.Abort()
		w.err = err
		return err
	}
	w.f = nil
	return nil
}

func (w *Writer) finish() error {
	if err := w.flush(); err != nil {
		return err
	}
	idx := marshalIndex(w.blocks, w.docLen, w.docSrc, w.o.Sources)
	w.h.numBlocks = uint32(len(w.blocks))
	w.h.indexOffset = w.off
	w.h.indexLen = uint64(len(idx))
	if _, err := w.bw.Write(idx); err != nil {
		return fmt.Errorf("shard: write %s: %w", w.path, err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("shard: write %s: %w", w.path, err)
	}
	if _, err := w.f.WriteAt(w.h.marshal(), 0); err != nil {
		return fmt.Errorf("shard: write %s: %w", w.path, err)
	}
	if err := w.f.Commit(); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	return nil
}

// Abort discards the shard being written.
func (w *Writer) Abort() {
	if w.f != nil {
		w.f.Abort()
		w.f = nil
	}
	if w.err == nil {
		w.err = errors.New("shard: writer aborted")
	}
}
