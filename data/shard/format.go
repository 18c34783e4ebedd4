package shard

import (
	"encoding/binary"
	"hash/crc32"
)

// Format constants; FORMAT.md is the specification.
const (
	// Magic opens every shard file.
	Magic = "MSMSHARD"
	// Version is the format version this package writes and reads.
	Version = 1
	// HeaderSize is the size of the fixed header in bytes.
	HeaderSize = 64
	// FlagUint32 marks 4-byte tokens (vocabularies above 65536); else 2 bytes.
	FlagUint32 = 1 << 0

	blockEntrySize = 32
	docEntrySize   = 8
	// MaxBlockBytes bounds the uncompressed size of one block.
	MaxBlockBytes = 1 << 30
	// MaxSources bounds the number of source names in a shard.
	MaxSources = 1 << 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// header is the fixed 64-byte file header.
type header struct {
	flags       uint32
	numDocs     uint64
	numTokens   uint64
	numBlocks   uint32
	numSources  uint32
	indexOffset uint64
	indexLen    uint64
	vocabSize   uint32
}

func (h *header) width() int {
	if h.flags&FlagUint32 != 0 {
		return 4
	}
	return 2
}

func (h *header) marshal() []byte {
	b := make([]byte, HeaderSize)
	copy(b, Magic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], Version)
	le.PutUint32(b[12:], h.flags)
	le.PutUint64(b[16:], h.numDocs)
	le.PutUint64(b[24:], h.numTokens)
	le.PutUint32(b[32:], h.numBlocks)
	le.PutUint32(b[36:], h.numSources)
	le.PutUint64(b[40:], h.indexOffset)
	le.PutUint64(b[48:], h.indexLen)
	le.PutUint32(b[56:], h.vocabSize)
	le.PutUint32(b[60:], crc32c(b[:60]))
	return b
}

// parseHeader checks the header against itself and the file size.
func parseHeader(name string, b []byte, size int64) (header, error) {
	var h header
	if int64(len(b)) < HeaderSize || size < HeaderSize {
		return h, formatErr(name, 0, ErrTruncated, "file is %d bytes, header needs %d", size, HeaderSize)
	}
	if string(b[:8]) != Magic {
		return h, formatErr(name, 0, ErrBadMagic, "got %q, want %q", b[:8], Magic)
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != Version {
		return h, formatErr(name, 8, ErrVersion, "file has version %d, this build reads %d", v, Version)
	}
	if got, want := le.Uint32(b[60:]), crc32c(b[:60]); got != want {
		return h, formatErr(name, 60, ErrChecksum, "header crc32c %08x, computed %08x", got, want)
	}
	h = header{
		flags:       le.Uint32(b[12:]),
		numDocs:     le.Uint64(b[16:]),
		numTokens:   le.Uint64(b[24:]),
		numBlocks:   le.Uint32(b[32:]),
		numSources:  le.Uint32(b[36:]),
		indexOffset: le.Uint64(b[40:]),
		indexLen:    le.Uint64(b[48:]),
		vocabSize:   le.Uint32(b[56:]),
	}
	switch {
	case h.flags&^FlagUint32 != 0:
		return h, formatErr(name, 12, ErrCorrupt, "unknown flags %#x", h.flags)
	case h.vocabSize == 0 || (h.width() == 2 && h.vocabSize > 1<<16):
		return h, formatErr(name, 56, ErrCorrupt, "vocab size %d with %d-byte tokens", h.vocabSize, h.width())
	case h.indexOffset < HeaderSize || h.indexLen < 4 || h.indexOffset > 1<<62 || h.indexLen > 1<<62:
		return h, formatErr(name, 40, ErrCorrupt, "index at %d, %d bytes", h.indexOffset, h.indexLen)
	case h.numSources > MaxSources:
		return h, formatErr(name, 36, ErrCorrupt, "%d sources", h.numSources)
	}
	if end := h.indexOffset + h.indexLen; end != uint64(size) {
		if end > uint64(size) {
			return h, formatErr(name, size, ErrTruncated, "header says %d bytes, file has %d", end, size)
		}
		return h, formatErr(name, int64(end), ErrCorrupt, "header says %d bytes, file has %d", end, size)
	}
	if h.numDocs > h.indexLen/docEntrySize || uint64(h.numBlocks) > h.indexLen/blockEntrySize ||
		uint64(h.numBlocks)*blockEntrySize+h.numDocs*docEntrySize+uint64(h.numSources)*2+4 > h.indexLen {
		return h, formatErr(name, 16, ErrCorrupt, "%d blocks, %d docs, %d sources do not fit a %d-byte index",
			h.numBlocks, h.numDocs, h.numSources, h.indexLen)
	}
	return h, nil
}

// blockEntry is one row of the block table.
type blockEntry struct {
	offset    uint64 // file offset of the zstd frame
	compLen   uint32 // compressed bytes
	rawLen    uint32 // uncompressed bytes
	firstDoc  uint64 // index of the block's first document
	numTokens uint32 // tokens in the block
	crc       uint32 // crc32c of the uncompressed bytes
}

func rawLen(tokens, width int) int { return tokens*width + (tokens+7)/8 }

// marshalIndex encodes the index (block table, doc table, sources, crc).
func marshalIndex(blocks []blockEntry, docLen, docSrc []uint32, sources []string) []byte {
	n := len(blocks)*blockEntrySize + len(docLen)*docEntrySize + 4
	for _, s := range sources {
		n += 2 + len(s)
	}
	b := make([]byte, 0, n)
	le := binary.LittleEndian
	for _, e := range blocks {
		b = le.AppendUint64(b, e.offset)
		b = le.AppendUint32(b, e.compLen)
		b = le.AppendUint32(b, e.rawLen)
		b = le.AppendUint64(b, e.firstDoc)
		b = le.AppendUint32(b, e.numTokens)
		b = le.AppendUint32(b, e.crc)
	}
	for i := range docLen {
		b = le.AppendUint32(b, docLen[i])
		b = le.AppendUint32(b, docSrc[i])
	}
	for _, s := range sources {
		b = le.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	return le.AppendUint32(b, crc32c(b))
}
