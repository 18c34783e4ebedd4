package shard

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// handShard builds a shard byte by byte from FORMAT.md, independently of
// Writer: one block per document, streamed zstd frames (no content size).
func handShard(t *testing.T, docs []testDoc, width int, vocab uint32, sources []string) []byte {
	t.Helper()
	le := binary.LittleEndian
	tab := crc32.MakeTable(crc32.Castagnoli)
	file := make([]byte, 64)
	var blocks, docTab []byte
	ntok := 0
	for i, d := range docs {
		var raw []byte
		for _, tok := range d.tokens {
			if width == 2 {
				raw = le.AppendUint16(raw, uint16(tok))
			} else {
				raw = le.AppendUint32(raw, uint32(tok))
			}
		}
		bits := make([]byte, (len(d.mask)+7)/8)
		for j, m := range d.mask {
			if m {
				bits[j/8] |= 1 << (j % 8)
			}
		}
		raw = append(raw, bits...)
		var comp bytes.Buffer
		zw, err := zstd.NewWriter(&comp, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(raw)
		zw.Close()
		blocks = le.AppendUint64(blocks, uint64(len(file)))
		blocks = le.AppendUint32(blocks, uint32(comp.Len()))
		blocks = le.AppendUint32(blocks, uint32(len(raw)))
		blocks = le.AppendUint64(blocks, uint64(i))
		blocks = le.AppendUint32(blocks, uint32(len(d.tokens)))
		blocks = le.AppendUint32(blocks, crc32.Checksum(raw, tab))
		file = append(file, comp.Bytes()...)
		docTab = le.AppendUint32(docTab, uint32(len(d.tokens)))
		docTab = le.AppendUint32(docTab, uint32(d.source))
		ntok += len(d.tokens)
	}
	idxOff := len(file)
	idx := append(blocks, docTab...)
	for _, s := range sources {
		idx = le.AppendUint16(idx, uint16(len(s)))
		idx = append(idx, s...)
	}
	idx = le.AppendUint32(idx, crc32.Checksum(idx, tab))
	file = append(file, idx...)
	h := file[:64]
	copy(h, "MSMSHARD")
	le.PutUint32(h[8:], 1)
	if width == 4 {
		le.PutUint32(h[12:], 1)
	}
	le.PutUint64(h[16:], uint64(len(docs)))
	le.PutUint64(h[24:], uint64(ntok))
	le.PutUint32(h[32:], uint32(len(docs)))
	le.PutUint32(h[36:], uint32(len(sources)))
	le.PutUint64(h[40:], uint64(idxOff))
	le.PutUint64(h[48:], uint64(len(idx)))
	le.PutUint32(h[56:], vocab)
	le.PutUint32(h[60:], crc32.Checksum(h[:60], tab))
	return file
}

func TestReadHandBuiltShard(t *testing.T) {
	for _, c := range []struct {
		name  string
		width int
		vocab int
	}{{"uint16", 2, 50000}, {"uint32", 4, 200000}} {
		t.Run(c.name, func(t *testing.T) {
			docs := genDocs(11, 30, 40, c.vocab, 3)
			b := handShard(t, docs, c.width, uint32(c.vocab), []string{"x", "yy", ""})
			r, err := NewReader(bytes.NewReader(b), int64(len(b)), "hand")
			if err != nil {
				t.Fatal(err)
			}
			for i := range docs {
				d, err := r.Doc(i)
				if err != nil {
					t.Fatal(err)
				}
				sameDoc(t, i, d, docs[i])
			}
			if !slices.Equal(r.Sources(), []string{"x", "yy", ""}) {
				t.Fatalf("sources %q", r.Sources())
			}
		})
	}
}

// TestWriterFollowsFormat decodes a Writer's file by hand from FORMAT.md.
func TestWriterFollowsFormat(t *testing.T) {
	docs := genDocs(5, 40, 60, 70000, 2)
	path := filepath.Join(t.TempDir(), "w.msms")
	writeShard(t, path, docs, WriterOptions{VocabSize: 70000, Sources: []string{"a", "b"}, BlockTokens: 100})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	tab := crc32.MakeTable(crc32.Castagnoli)
	if string(b[:8]) != "MSMSHARD" || le.Uint32(b[8:]) != 1 || le.Uint32(b[12:]) != 1 ||
		le.Uint32(b[60:]) != crc32.Checksum(b[:60], tab) || le.Uint32(b[56:]) != 70000 {
		t.Fatalf("header %x", b[:64])
	}
	nblk, ndoc := int(le.Uint32(b[32:])), int(le.Uint64(b[16:]))
	idx := b[le.Uint64(b[40:]):]
	if uint64(len(idx)) != le.Uint64(b[48:]) || ndoc != len(docs) {
		t.Fatalf("index length %d, header %d; docs %d", len(idx), le.Uint64(b[48:]), ndoc)
	}
	if le.Uint32(idx[len(idx)-4:]) != crc32.Checksum(idx[:len(idx)-4], tab) {
		t.Fatal("index crc")
	}
	dec, _ := zstd.NewReader(nil)
	var tokens []int32
	var mask []bool
	for k := range nblk {
		e := idx[32*k:]
		off, clen, n := le.Uint64(e), le.Uint32(e[8:]), int(le.Uint32(e[24:]))
		raw, err := dec.DecodeAll(b[off:off+uint64(clen)], nil)
		if err != nil || crc32.Checksum(raw, tab) != le.Uint32(e[28:]) || len(raw) != 4*n+(n+7)/8 {
			t.Fatalf("block %d: %v", k, err)
		}
		for j := range n {
			tokens = append(tokens, int32(le.Uint32(raw[4*j:])))
			mask = append(mask, raw[4*n+j/8]>>(j%8)&1 == 1)
		}
	}
	p := 0
	for i, d := range docs {
		e := idx[32*nblk+8*i:]
		l := int(le.Uint32(e))
		if l != len(d.tokens) || int(le.Uint32(e[4:])) != d.source ||
			!slices.Equal(tokens[p:p+l], d.tokens) || !slices.Equal(mask[p:p+l], d.mask) {
			t.Fatalf("doc %d differs", i)
		}
		p += l
	}
}
