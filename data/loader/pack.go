package loader

import (
	"github.com/msmtrain/msmtrain/data/shard"
)

// IgnoreIndex marks targets that carry no loss (PyTorch's ignore_index).
const IgnoreIndex = -100

// cursor walks one rank's share of an epoch order.
type cursor struct {
	o           *epochOrder
	rank, world int
	v           groupView
	data        []*shard.Block // decoded blocks of the current group, by index in the group
	lo, hi      int64          // order positions of the current group
}

func newCursor(o *epochOrder, rank, world int) *cursor {
	return &cursor{o: o, rank: rank, world: world, lo: 1, hi: 0}
}

// count returns the number of documents of this rank in the epoch.
func (c *cursor) count() int64 {
	n := c.o.numDocs()
	if n <= int64(c.rank) {
		return 0
	}
	return (n - int64(c.rank) + int64(c.world) - 1) / int64(c.world)
}

type docRef struct {
	global int64
	ref    *blockRef
	blk    int // block index inside the group
	local  int // doc index inside its block
	length int
}

// at resolves position q of this rank's sequence.
func (c *cursor) at(q int64) docRef {
	p := q*int64(c.world) + int64(c.rank)
	if p < c.lo || p >= c.hi {
		g := c.o.groupOf(p)
		c.o.view(g, &c.v)
		c.lo, c.hi = c.o.groupStart[g], c.o.groupStart[g+1]
		c.data = c.data[:0]
		for range c.v.blocks {
			c.data = append(c.data, nil)
		}
	}
	blk, local := c.v.locate(p - c.lo)
	ref := &c.v.blocks[blk]
	r := c.o.ds.Shards()[ref.shard]
	return docRef{global: ref.base + int64(local), ref: ref, blk: blk, local: local, length: r.DocLen(ref.first + local)}
}

// content returns the tokens and mask of a resolved document.
func (c *cursor) content(d docRef) ([]int32, []bool, error) {
	b := c.data[d.blk]
	if b == nil {
		var err error
		b, err = c.o.ds.Shards()[d.ref.shard].Block(d.ref.block)
		if err != nil {
			return nil, nil, err
		}
		c.data[d.blk] = b
	}
	s, e := b.Starts[d.local], b.Starts[d.local+1]
	return b.Tokens[s:e], b.Mask[s:e], nil
}

// packStats counts what one build saw.
type packStats struct {
	skipped   int64 // one-token documents
	truncated int64 // pairs cut in pad mode
	rows      int64 // rows holding a document
	tokens    int64 // slots holding a document
}

// packer fills one batch; the same code sizes epochs (out == nil) and
// builds batches, so the two always agree.
type packer struct {
	cfg Config
	w   window // pack mode
}

// build places documents from st into one batch. It returns the state after
// the batch and whether anything was placed (false: the rank's share of the
// epoch is exhausted).
func (pk *packer) build(c *cursor, st State, out *Batch, ps *packStats) (State, bool, error) {
	if pk.cfg.Mode == Pad {
		return pk.buildPad(c, st, out, ps)
	}
	if pk.cfg.Examples > 0 {
		return pk.buildExamples(c, st, out, ps)
	}
	T, w := pk.cfg.SeqLen, &pk.w
	if !w.at(c, st) {
		if err := w.reset(c, st, pk.cfg.Window, out != nil); err != nil {
			return st, false, err
		}
	}
	placed := false
	for row := range pk.cfg.Rows {
		fill, id := 0, int32(0)
		for fill < T {
			if err := w.normalize(ps); err != nil {
				return st, placed, err
			}
			if len(w.ents) == 0 {
				break
			}
			// Each row starts with the oldest document not yet placed, so
			// none waits for long; best fit fills the rest.
			i, take := 0, w.head(T)
			if fill > 0 {
				if i, take = w.bestFit(T-fill, T); i < 0 {
					// Nothing fits: top the row up with the head's next pairs if splitting is on, or if the
					// head is longer than a row anyway (it is cut wherever it starts).
					if !pk.cfg.Split && w.ents[0].pairs-w.off <= T {
						break
					}
					i, take = 0, T-fill
				}
			}
			if out != nil {
				e := &w.ents[i]
				off := 0
				if i == 0 {
					off = w.off
				}
				id++
				copyDoc(e.tokens, e.mask, e.global, off, take, row, fill, id, out)
			}
			w.take(i, take)
			fill += take
			placed = true
		}
		if fill > 0 {
			ps.rows++
			ps.tokens += int64(fill)
		}
	}
	if err := w.normalize(ps); err != nil {
		return st, placed, err
	}
	next := w.state(st)
	w.last = next
	return next, placed, nil
}

// buildPad puts one document per row, in order, truncated to SeqLen pairs.
func (pk *packer) buildPad(c *cursor, st State, out *Batch, ps *packStats) (State, bool, error) {
	n := c.count()
	row := 0
	for st.Pos < n {
		d := c.at(st.Pos)
		pairs := d.length - 1
		if pairs <= 0 {
			st.Pos++
			ps.skipped++
			continue
		}
		if row == pk.cfg.Rows {
			break
		}
		st.Pos++
		take := min(pairs, pk.cfg.SeqLen)
		if out != nil {
			tokens, mask, err := c.content(d)
			if err != nil {
				return st, row > 0, err
			}
			copyDoc(tokens, mask, d.global, 0, take, row, 0, 1, out)
		}
		ps.truncated += int64(pairs - take)
		ps.rows++
		ps.tokens += int64(take)
		row++
	}
	return st, row > 0, nil
}

// copyDoc writes pairs [off, off+take) of a document into row at slot
// start, as the row's document id.
func copyDoc(tokens []int32, mask []bool, global int64, off, take, row, start int, id int32, out *Batch) {
	base := row*out.SeqLen + start
	in := out.Input[base : base+take]
	tg := out.Target[base : base+take]
	w := out.Weight[base : base+take]
	pos := out.Pos[base : base+take]
	did := out.DocID[base : base+take]
	src := tokens[off : off+take+1]
	m := mask[off+1 : off+take+1]
	trained := 0
	for k := range in {
		in[k] = src[k]
		pos[k] = int32(k)
		did[k] = id
		if m[k] {
			tg[k] = src[k+1]
			w[k] = 1
			trained++
		}
	}
	out.Tokens += take
	out.Trained += trained
	out.Segments = append(out.Segments, Segment{Row: row, Start: start, Len: take, Doc: global, Offset: off})
}
