package tokenizer

import (
	"runtime"
	"sync"
)

// cacheMax bounds the per-encoder cache of pre-token encodings.
const cacheMax = 1 << 16

// scratch holds buffers reused across words.
type scratch struct {
	ids   []int
	ranks []uint32
	news  []int
}

// encoder is the per-goroutine state of encoding: reusable buffers and a
// cache of recent pre-tokens. Encoders live in the Tokenizer's pool, so the
// cache is never shared and needs no lock.
type encoder struct {
	t      *Tokenizer
	segs   []segment
	segs2  []segment
	words  []word
	words2 []word
	sc     scratch
	cache  map[string]span // pre-token -> ids in arena
	arena  []int32
}

type span struct{ off, n int32 }

func newEncoder(t *Tokenizer) *encoder {
	return &encoder{t: t, cache: make(map[string]span, 1024)}
}

// Encode returns the token ids of text. Added tokens that occur in text are
// matched whole; no BOS or EOS is added.
func (t *Tokenizer) Encode(text string) []int {
	e := t.pool.Get().(*encoder)
	ids := e.encode(nil, nil, text)
	t.pool.Put(e)
	return ids
}

// EncodeBatch encodes texts in parallel on all cores; the result is in the
// order of texts.
func (t *Tokenizer) EncodeBatch(texts []string) [][]int {
	out := make([][]int, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := t.pool.Get().(*encoder)
			defer t.pool.Put(e)
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(texts) {
					return
				}
				out[i] = e.encode(nil, nil, texts[i])
			}
		}()
	}
	wg.Wait()
	return out
}

// EncodeOffsets is Encode that also returns, for each token, the byte offset
// in text just past the token's last byte. Offsets are exact when
// normalization leaves text unchanged (always for Llama 3; for NFC text under
// Qwen) and approximate otherwise.
func (t *Tokenizer) EncodeOffsets(text string) (ids, ends []int) {
	e := t.pool.Get().(*encoder)
	ends = []int{}
	ids = e.encode(nil, &ends, text)
	t.pool.Put(e)
	return ids, ends
}

func (e *encoder) encode(dst []int, ends *[]int, text string) []int {
	t := e.t
	e.segs = t.addRaw.split(e.segs[:0], text, 0)
	e.segs2 = e.segs2[:0]
	for _, s := range e.segs {
		if s.id >= 0 || (t.norm == nil && t.addNrm == nil) {
			e.segs2 = append(e.segs2, s)
			continue
		}
		n := s.text
		if t.norm != nil {
			n = t.norm.normalize(n)
		}
		k := len(e.segs2)
		e.segs2 = t.addNrm.split(e.segs2, n, s.off)
		if ends != nil && n != s.text {
			om := newOffMap(t.norm, s.text, n, s.off)
			for i := k; i < len(e.segs2); i++ {
				e.segs2[i].om = om
			}
		}
	}
	for _, s := range e.segs2 {
		if s.id >= 0 {
			dst = append(dst, s.id)
			if ends != nil {
				*ends = append(*ends, s.toRaw(s.off+len(s.text)))
			}
			continue
		}
		e.words = append(e.words[:0], word{s.text, 0})
		for _, p := range t.pre {
			out := e.words2[:0]
			for _, w := range e.words {
				out = p.apply(out, w)
			}
			e.words, e.words2 = out, e.words
		}
		for _, w := range e.words {
			n0 := len(dst)
			dst = e.word(dst, w.s)
			if ends != nil {
				end := s.off + w.off
				for _, id := range dst[n0:] {
					end += len(t.decode[id])
					*ends = append(*ends, s.toRaw(max(end, s.off)))
				}
			}
		}
	}
	return dst
}

// word appends the ids of one pre-token, through the cache.
func (e *encoder) word(dst []int, w string) []int {
	if sp, ok := e.cache[w]; ok {
		for _, id := range e.arena[sp.off : sp.off+sp.n] {
			dst = append(dst, int(id))
		}
		return dst
	}
	n0 := len(dst)
	dst = e.t.bpe(dst, w, &e.sc)
	if len(e.cache) >= cacheMax || len(e.arena) > 1<<22 {
		clear(e.cache)
		e.arena = e.arena[:0]
	}
	if len(w) <= 256 {
		sp := span{int32(len(e.arena)), int32(len(dst) - n0)}
		for _, id := range dst[n0:] {
			e.arena = append(e.arena, int32(id))
		}
		e.cache[w] = sp
	}
	return dst
}
