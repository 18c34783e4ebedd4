package shard

import (
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"os"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Doc is one document read from a shard. Tokens and Mask share memory with
// the reader's block cache: treat them as read-only.
type Doc struct {
	Tokens []int32
	Mask   []bool // true where the token is trained
	Source int    // index into Reader.Sources
}

// Block is one decoded block: the tokens and mask of documents
// FirstDoc .. FirstDoc+len(Starts)-2, document k spanning
// Tokens[Starts[k]:Starts[k+1]]. It is read-only once returned.
type Block struct {
	FirstDoc int
	Starts   []int
	Tokens   []int32
	Mask     []bool
}

// Reader reads a shard file. It is safe for concurrent use.
type Reader struct {
	name    string
	ra      io.ReaderAt
	closer  io.Closer
	size    int64
	h       header
	blocks  []blockEntry
	docLen  []uint32
	docSrc  []uint32
	docOff  []uint32 // token offset of each doc inside its block
	sources []string

	mu    sync.Mutex
	cache []cached // most recently used first
	ncach int
}

type cached struct {
	idx int
	b   *Block
}

// DefaultCacheBlocks is the number of decoded blocks a Reader keeps.
const DefaultCacheBlocks = 2

var (
	decOnce sync.Once
	decoder *zstd.Decoder
)

func zstdDecoder() *zstd.Decoder {
	decOnce.Do(func() {
		decoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
			zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxMemory(MaxBlockBytes))
	})
	return decoder
}

// Open opens a shard and reads and checks its header and index. Block
// contents are checked as they are read.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("shard: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("shard: %w", err)
	}
	r, err := NewReader(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads a shard of size bytes from ra; name is used in errors.
// Close does not close ra.
func NewReader(ra io.ReaderAt, size int64, name string) (*Reader, error) {
	hb := make([]byte, HeaderSize)
	if size >= HeaderSize {
		if _, err := ra.ReadAt(hb, 0); err != nil {
			return nil, fmt.Errorf("shard: read %s: %w", name, err)
		}
	}
	h, err := parseHeader(name, hb, size)
	if err != nil {
		return nil, err
	}
	idx := make([]byte, h.indexLen)
	if _, err := ra.ReadAt(idx, int64(h.indexOffset)); err != nil {
		return nil, fmt.Errorf("shard: read %s index: %w", name, err)
	}
	r := &Reader{name: name, ra: ra, size: size, h: h, ncach: DefaultCacheBlocks}
	if err := r.parseIndex(idx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reader) parseIndex(b []byte) error {
	h := &r.h
	off := int64(h.indexOffset)
	body := b[:len(b)-4]
	if got, want := binary.LittleEndian.Uint32(b[len(b)-4:]), crc32c(body); got != want {
		return formatErr(r.name, off+int64(len(body)), ErrChecksum, "index crc32c %08x, computed %08x", got, want)
	}
	le := binary.LittleEndian
	r.blocks = make([]blockEntry, h.numBlocks)
	p := 0
	next, tokens := uint64(HeaderSize), uint64(0)
	for i := range r.blocks {
		e := blockEntry{offset: le.Uint64(body[p:]), compLen: le.Uint32(body[p+8:]), rawLen: le.Uint32(body[p+12:]),
			firstDoc: le.Uint64(body[p+16:]), numTokens: le.Uint32(body[p+24:]), crc: le.Uint32(body[p+28:])}
		switch {
		case e.offset != next:
			return formatErr(r.name, off+int64(p), ErrCorrupt, "block %d at %d, want %d", i, e.offset, next)
		case (i == 0 && e.firstDoc != 0) || (i > 0 && e.firstDoc <= r.blocks[i-1].firstDoc) || e.firstDoc >= h.numDocs:
			return formatErr(r.name, off+int64(p), ErrCorrupt, "block %d starts at doc %d", i, e.firstDoc)
		case e.numTokens == 0 || uint64(e.rawLen) != uint64(rawLen(int(e.numTokens), h.width())) || e.rawLen > MaxBlockBytes:
			return formatErr(r.name, off+int64(p), ErrCorrupt, "block %d: %d raw bytes for %d tokens", i, e.rawLen, e.numTokens)
		}
		r.blocks[i] = e
		next = e.offset + uint64(e.compLen)
		tokens += uint64(e.numTokens)
		p += blockEntrySize
	}
	if next != h.indexOffset {
		return formatErr(r.name, off, ErrCorrupt, "blocks end at %d, index starts at %d", next, h.indexOffset)
	}
	if tokens != h.numTokens || (h.numBlocks == 0) != (h.numDocs == 0) {
		return formatErr(r.name, off, ErrCorrupt, "blocks hold %d tokens, header says %d", tokens, h.numTokens)
	}
	r.docLen = make([]uint32, h.numDocs)
	r.docSrc = make([]uint32, h.numDocs)
	r.docOff = make([]uint32, h.numDocs)
	blk, inBlock := -1, uint64(0)
	for i := range r.docLen {
		if blk+1 < len(r.blocks) && r.blocks[blk+1].firstDoc == uint64(i) {
			if blk >= 0 && inBlock != uint64(r.blocks[blk].numTokens) {
				return formatErr(r.name, off+int64(p), ErrCorrupt, "block %d: docs hold %d tokens, block %d", blk, inBlock, r.blocks[blk].numTokens)
			}
			blk, inBlock = blk+1, 0
		}
		r.docLen[i], r.docSrc[i] = le.Uint32(body[p:]), le.Uint32(body[p+4:])
		r.docOff[i] = uint32(inBlock)
		inBlock += uint64(r.docLen[i])
		if r.docSrc[i] >= h.numSources || inBlock > uint64(r.blocks[blk].numTokens) {
			return formatErr(r.name, off+int64(p), ErrCorrupt, "doc %d: %d tokens, source %d", i, r.docLen[i], r.docSrc[i])
		}
		p += docEntrySize
	}
	if blk >= 0 && (blk != len(r.blocks)-1 || inBlock != uint64(r.blocks[blk].numTokens)) {
		return formatErr(r.name, off+int64(p), ErrCorrupt, "doc table does not cover block %d", blk)
	}
	r.sources = make([]string, h.numSources)
	for i := range r.sources {
		if p+2 > len(body) {
			return formatErr(r.name, off+int64(p), ErrCorrupt, "source table cut short")
		}
		n := int(le.Uint16(body[p:]))
		if p+2+n > len(body) {
			return formatErr(r.name, off+int64(p), ErrCorrupt, "source %d cut short", i)
		}
		r.sources[i] = string(body[p+2 : p+2+n])
		p += 2 + n
	}
	if p != len(body) {
		return formatErr(r.name, off+int64(p), ErrCorrupt, "%d bytes after the source table", len(body)-p)
	}
	return nil
}

// Name returns the path the shard was opened from.
func (r *Reader) Name() string { return r.name }

// NumDocs returns the number of documents.
func (r *Reader) NumDocs() int { return len(r.docLen) }

// NumTokens returns the number of tokens.
func (r *Reader) NumTokens() int64 { return int64(r.h.numTokens) }

// NumBlocks returns the number of blocks.
func (r *Reader) NumBlocks() int { return len(r.blocks) }

// VocabSize returns the vocabulary size recorded by the writer.
func (r *Reader) VocabSize() int { return int(r.h.vocabSize) }

// Sources returns the source names; a Doc's Source indexes it.
func (r *Reader) Sources() []string { return r.sources }

// DocLen returns the token count of document i without reading it.
func (r *Reader) DocLen(i int) int { return int(r.docLen[i]) }

// DocSource returns the source id of document i without reading it.
func (r *Reader) DocSource(i int) int { return int(r.docSrc[i]) }

// BlockDocs returns the first document of block b and its document count.
func (r *Reader) BlockDocs(b int) (first, n int) {
	first = int(r.blocks[b].firstDoc)
	end := len(r.docLen)
	if b+1 < len(r.blocks) {
		end = int(r.blocks[b+1].firstDoc)
	}
	return first, end - first
}

// BlockOf returns the block holding document i.
func (r *Reader) BlockOf(i int) int {
	return sort.Search(len(r.blocks), func(b int) bool { return r.blocks[b].firstDoc > uint64(i) }) - 1
}

// SetCacheBlocks sets how many decoded blocks Doc keeps (at least 1).
func (r *Reader) SetCacheBlocks(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ncach = max(n, 1)
	if len(r.cache) > r.ncach {
		r.cache = r.cache[:r.ncach]
	}
}

// Doc reads document i through the block cache.
func (r *Reader) Doc(i int) (Doc, error) {
	if i < 0 || i >= len(r.docLen) {
		return Doc{}, fmt.Errorf("shard: doc %d of %s: %w [0,%d)", i, r.name, ErrRange, len(r.docLen))
	}
	b, err := r.cachedBlock(r.BlockOf(i))
	if err != nil {
		return Doc{}, err
	}
	s, n := int(r.docOff[i]), int(r.docLen[i])
	return Doc{Tokens: b.Tokens[s : s+n : s+n], Mask: b.Mask[s : s+n : s+n], Source: int(r.docSrc[i])}, nil
}

func (r *Reader) cachedBlock(bi int) (*Block, error) {
	r.mu.Lock()
	for k, c := range r.cache {
		if c.idx == bi {
			copy(r.cache[1:k+1], r.cache[:k])
			r.cache[0] = c
			r.mu.Unlock()
			return c.b, nil
		}
	}
	r.mu.Unlock()
	b, err := r.Block(bi)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if len(r.cache) < r.ncach {
		r.cache = append(r.cache, cached{})
	}
	copy(r.cache[1:], r.cache)
	r.cache[0] = cached{bi, b}
	r.mu.Unlock()
	return b, nil
}

// Block reads, checks and decodes block b, bypassing the cache.
func (r *Reader) Block(b int) (*Block, error) {
	if b < 0 || b >= len(r.blocks) {
		return nil, fmt.Errorf("shard: block %d of %s: %w [0,%d)", b, r.name, ErrRange, len(r.blocks))
	}
	raw, err := r.rawBlock(b)
	if err != nil {
		return nil, err
	}
	e := r.blocks[b]
	first, nd := r.BlockDocs(b)
	blk := &Block{FirstDoc: first, Starts: make([]int, nd+1), Tokens: make([]int32, e.numTokens), Mask: make([]bool, e.numTokens)}
	for k := range nd {
		blk.Starts[k+1] = blk.Starts[k] + int(r.docLen[first+k])
	}
	if err := r.decode(b, raw, blk.Tokens, blk.Mask); err != nil {
		return nil, err
	}
	return blk, nil
}

var rawPool sync.Pool

// rawBlock reads and decompresses block b and checks its crc.
func (r *Reader) rawBlock(b int) ([]byte, error) {
	e := r.blocks[b]
	comp := make([]byte, e.compLen)
	if _, err := r.ra.ReadAt(comp, int64(e.offset)); err != nil {
		return nil, formatErr(r.name, int64(e.offset), ErrTruncated, "block %d: %v", b, err)
	}
	var dst []byte
	if p, ok := rawPool.Get().(*[]byte); ok && cap(*p) >= int(e.rawLen) {
		dst = (*p)[:0:e.rawLen]
	} else {
		dst = make([]byte, 0, e.rawLen)
	}
	raw, err := zstdDecoder().DecodeAll(comp, dst)
	if err != nil {
		return nil, formatErr(r.name, int64(e.offset), ErrCorrupt, "block %d: zstd: %v", b, err)
	}
	if len(raw) != int(e.rawLen) {
		return nil, formatErr(r.name, int64(e.offset), ErrCorrupt, "block %d: %d bytes, want %d", b, len(raw), e.rawLen)
	}
	if got := crc32c(raw); got != e.crc {
		return nil, formatErr(r.name, int64(e.offset), ErrChecksum, "block %d: crc32c %08x, index says %08x", b, got, e.crc)
	}
	return raw, nil
}

// decode converts a checked raw block into tokens and mask and returns the
// raw buffer to the pool.
func (r *Reader) decode(b int, raw []byte, tokens []int32, mask []bool) error {
	defer rawPool.Put(&raw)
	n, vocab := len(tokens), r.h.vocabSize
	bad := false
	if r.h.width() == 2 {
		src := raw[:2*n]
		for i := range tokens {
			t := uint32(src[2*i]) | uint32(src[2*i+1])<<8
			bad = bad || t >= vocab
			tokens[i] = int32(t)
		}
	} else {
		src := raw[:4*n]
		for i := range tokens {
			t := binary.LittleEndian.Uint32(src[4*i:])
			bad = bad || t >= vocab
			tokens[i] = int32(t)
		}
	}
	if bad {
		return formatErr(r.name, int64(r.blocks[b].offset), ErrCorrupt, "block %d: token outside vocabulary of %d", b, vocab)
	}
	bits := raw[r.h.width()*n:]
	for i := range mask {
		mask[i] = bits[i>>3]>>(i&7)&1 != 0
	}
	if n%8 != 0 && bits[len(bits)-1]>>(n%8) != 0 {
		return formatErr(r.name, int64(r.blocks[b].offset), ErrCorrupt, "block %d: mask padding bits set", b)
	}
	return nil
}

// All iterates over the documents in order, reading each block once. It
// stops after the first error, which it yields.
func (r *Reader) All() iter.Seq2[Doc, error] {
	return func(yield func(Doc, error) bool) {
		for b := range r.blocks {
			blk, err := r.Block(b)
			if err != nil {
				yield(Doc{}, err)
				return
			}
			for k := range len(blk.Starts) - 1 {
				s, e := blk.Starts[k], blk.Starts[k+1]
				d := Doc{Tokens: blk.Tokens[s:e:e], Mask: blk.Mask[s:e:e], Source: int(r.docSrc[blk.FirstDoc+k])}
				if !yield(d, nil) {
					return
				}
			}
		}
	}
}

// Verify reads every block and checks its checksum and contents.
func (r *Reader) Verify() error {
	for _, err := range r.All() {
		if err != nil {
			return err
		}
	}
	return nil
}

// Close closes the file.
func (r *Reader) Close() error {
	r.mu.Lock()
	r.cache = nil
	r.mu.Unlock()
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// Size returns the shard's size in bytes.
func (r *Reader) Size() int64 { return r.size }
