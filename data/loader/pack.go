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
}

// packer fills one batch; the same code sizes epochs (out == nil) and
// builds batches, so the two always agree.
type packer struct {
	cfg  Config
	fill []int   // pairs used per row
	segs []int32 // documents placed per row
}

// build places documents from st into one batch. It returns the state after
// the batch and whether anything was placed (false: the rank's share of the
// epoch is exhausted).
func (pk *packer) build(c *cursor, st State, out *Batch, ps *packStats) (State, bool, error) {
	T, B := pk.cfg.SeqLen, pk.cfg.Rows
	pk.fill = append(pk.fill[:0], make([]int, B)...)
	pk.segs = append(pk.segs[:0], make([]int32, B)...)
	n := c.count()
	placed, rowsUsed := false, 0
	for st.Pos < n {
		d := c.at(st.Pos)
		pairs := d.length - 1
		if pairs <= 0 {
			st.Pos, st.Offset = st.Pos+1, 0
			ps.skipped++
			continue
		}
		take := min(pairs-st.Offset, T)
		row := -1
		if pk.cfg.Mode == Pad {
			if rowsUsed < B {
				row = rowsUsed
			}
		} else {
			for r := range B {
				if pk.fill[r]+take <= T {
					row = r
					break
				}
			}
		}
		if row < 0 {
			break
		}
		if out != nil {
			if err := pk.copyDoc(c, d, st.Offset, take, row, out); err != nil {
				return st, placed, err
			}
		}
		placed = true
		pk.fill[row] += take
		pk.segs[row]++
		if pk.cfg.Mode == Pad {
			rowsUsed++
			ps.truncated += int64(pairs - take)
			st.Pos, st.Offset = st.Pos+1, 0
		} else if st.Offset += take; st.Offset >= pairs {
			st.Pos, st.Offset = st.Pos+1, 0
		}
	}
	for _, f := range pk.fill {
		if f > 0 {
			ps.rows++
		}
	}
	return st, placed, nil
}

// copyDoc writes pairs [off, off+take) of document d into row at its fill.
func (pk *packer) copyDoc(c *cursor, d docRef, off, take, row int, out *Batch) error {
	tokens, mask, err := c.content(d)
	if err != nil {
		return err
	}
	start := pk.fill[row]
	base := row*pk.cfg.SeqLen + start
	id := pk.segs[row] + 1
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
	out.Segments = append(out.Segments, Segment{Row: row, Start: start, Len: take, Doc: d.global, Offset: off})
	return nil
}
