package loader

import "sort"

// Examples mode (Config.Examples > 0): a batch holds the stream's next Examples documents (one-token documents
// skipped), all of them, packed into as many rows as they need. A step therefore trains on a fixed number of
// examples (chats, say) whatever their lengths, and its number of rows varies: this is what an AFT batch size
// "in examples" means. Within a batch the documents are packed first-fit decreasing: the longest first, each
// into the first row with room (a document longer than a row is cut into full rows and a remainder, each piece
// placed like a document). The state after a batch is the position after its documents, so resuming is exact.

// exampleDoc is one document of an examples batch, with its content when the batch is being built.
type exampleDoc struct {
	global int64
	pairs  int
	tokens []int32
	mask   []bool
}

// examplePiece is pairs [off, off+take) of document doc, placed in row at slot start.
type examplePiece struct {
	doc, off, take, row, start int
}

// buildExamples builds one examples-mode batch into out (resized to the rows it needs; a batch of one padding
// row when the stream is exhausted), or only counts it when out is nil.
func (pk *packer) buildExamples(c *cursor, st State, out *Batch, ps *packStats) (State, bool, error) {
	T, n := pk.cfg.SeqLen, c.count()
	var docs []exampleDoc
	for st.Pos < n && len(docs) < pk.cfg.Examples {
		d := c.at(st.Pos)
		st.Pos++
		if d.length-1 <= 0 {
			ps.skipped++
			continue
		}
		e := exampleDoc{global: d.global, pairs: d.length - 1}
		if out != nil {
			// read now: resolving a later position may move the cursor to another group of blocks
			tokens, mask, err := c.content(d)
			if err != nil {
				return st, len(docs) > 0, err
			}
			e.tokens, e.mask = tokens, mask
		}
		docs = append(docs, e)
	}
	if len(docs) == 0 {
		if out != nil {
			*out = *newBatch(1, T)
		}
		return st, false, nil
	}
	var pieces []examplePiece
	for i, d := range docs {
		for off := 0; off < d.pairs; off += T {
			pieces = append(pieces, examplePiece{doc: i, off: off, take: min(T, d.pairs-off)})
		}
	}
	sort.SliceStable(pieces, func(i, j int) bool { return pieces[i].take > pieces[j].take })
	var fill []int // per row
	for i := range pieces {
		p := &pieces[i]
		p.row = -1
		for r, f := range fill {
			if T-f >= p.take {
				p.row = r
				break
			}
		}
		if p.row < 0 {
			fill = append(fill, 0)
			p.row = len(fill) - 1
		}
		p.start = fill[p.row]
		fill[p.row] += p.take
	}
	ps.rows += int64(len(fill))
	for _, f := range fill {
		ps.tokens += int64(f)
	}
	if out != nil {
		*out = *newBatch(len(fill), T)
		ids := make([]int32, len(fill)) // document ids within each row: 1, 2, ...
		for _, p := range pieces {
			d := &docs[p.doc]
			ids[p.row]++
			copyDoc(d.tokens, d.mask, d.global, p.off, p.take, p.row, p.start, ids[p.row], out)
		}
	}
	return st, true, nil
}

// Padding returns a batch of rows padding rows: a forward pass that trains nothing, for a process that must
// take part in as many (collective) passes as the others.
func Padding(rows, seqLen int) *Batch {
	b := newBatch(rows, seqLen)
	b.Filler = true
	return b
}

// Slice returns rows [lo, hi) of b as a batch of their own (sharing b's slices): a forward pass over part of a
// batch whose rows are more than one pass may take (examples mode).
func (b *Batch) Slice(lo, hi int) *Batch {
	T := b.SeqLen
	s := &Batch{Rows: hi - lo, SeqLen: T, Input: b.Input[lo*T : hi*T], Target: b.Target[lo*T : hi*T],
		Weight: b.Weight[lo*T : hi*T], Pos: b.Pos[lo*T : hi*T], DocID: b.DocID[lo*T : hi*T], Filler: b.Filler,
		Epoch: b.Epoch, Step: b.Step, Next: b.Next}
	for _, seg := range b.Segments {
		if seg.Row >= lo && seg.Row < hi {
			seg.Row -= lo
			s.Segments = append(s.Segments, seg)
			s.Tokens += seg.Len
		}
	}
	for _, w := range s.Weight {
		if w != 0 {
			s.Trained++
		}
	}
	return s
}
