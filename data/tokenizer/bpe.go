package tokenizer

import "container/heap"

const noRank = ^uint32(0)

// mergePair looks up the merge of ids a and b: its rank and the merged id.
func (t *Tokenizer) mergePair(a, b int) (rank uint32, id int) {
	v, ok := t.merges[uint64(a)<<32|uint64(b)]
	if !ok {
		return noRank, 0
	}
	return uint32(v >> 32), int(uint32(v))
}

// bpe appends the ids of one pre-token (raw bytes) to dst, using sc as scratch.
func (t *Tokenizer) bpe(dst []int, w string, sc *scratch) []int {
	if t.ignoreMerges || len(w) == 1 {
		if id, ok := t.vocab[w]; ok {
			return append(dst, id)
		}
	}
	ids := sc.ids[:0]
	for i := 0; i < len(w); i++ {
		if id := t.byteID[w[i]]; id >= 0 { // bytes missing from the vocab are dropped, as Rust does without unk
			ids = append(ids, id)
		}
	}
	if len(ids) > 64 {
		ids = t.mergeHeap(ids, sc)
	} else {
		ids = t.mergeLinear(ids, sc)
	}
	sc.ids = ids
	return append(dst, ids...)
}

// mergeLinear applies merges by rank, lowest rank and then leftmost first,
// keeping the rank of each adjacent pair in a slice: O(n^2) on n symbols,
// which beats a heap on the short words that make up almost all text.
func (t *Tokenizer) mergeLinear(ids []int, sc *scratch) []int {
	if len(ids) < 2 {
		return ids
	}
	ranks, news := sc.ranks[:0], sc.news[:0]
	for i := 0; i+1 < len(ids); i++ {
		r, id := t.mergePair(ids[i], ids[i+1])
		ranks, news = append(ranks, r), append(news, id)
	}
	for len(ids) > 1 {
		best, bi := noRank, -1
		for i, r := range ranks {
			if r < best {
				best, bi = r, i
			}
		}
		if bi < 0 {
			break
		}
		ids[bi] = news[bi]
		ids = append(ids[:bi+1], ids[bi+2:]...)
		ranks = append(ranks[:bi], ranks[bi+1:]...)
		news = append(news[:bi], news[bi+1:]...)
		if bi > 0 {
			ranks[bi-1], news[bi-1] = t.mergePair(ids[bi-1], ids[bi])
		}
		if bi < len(ranks) {
			ranks[bi], news[bi] = t.mergePair(ids[bi], ids[bi+1])
		}
	}
	sc.ranks, sc.news = ranks, news
	return ids
}

// mergeHeap is the Rust library's algorithm (Word::merge_all): a priority
// queue of candidate merges over a linked list of symbols, O(n log n).
func (t *Tokenizer) mergeHeap(ids []int, sc *scratch) []int {
	n := len(ids)
	prev, next := make([]int, n), make([]int, n)
	alive := make([]bool, n)
	for i := range ids {
		prev[i], next[i], alive[i] = i-1, i+1, true
	}
	next[n-1] = -1
	q := &mergeQueue{}
	push := func(i int) {
		if i < 0 {
			return
		}
		if j := next[i]; j >= 0 {
			if r, id := t.mergePair(ids[i], ids[j]); r != noRank {
				heap.Push(q, mergeCand{rank: r, pos: i, id: id})
			}
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	for q.Len() > 0 {
		c := heap.Pop(q).(mergeCand)
		j := next[c.pos]
		if !alive[c.pos] || j < 0 {
			continue
		}
		if r, id := t.mergePair(ids[c.pos], ids[j]); r != c.rank || id != c.id {
			continue // stale: a neighbour changed since this was queued
		}
		ids[c.pos] = c.id
		alive[j] = false
		next[c.pos] = next[j]
		if k := next[j]; k >= 0 {
			prev[k] = c.pos
		}
		if p := prev[c.pos]; p >= 0 {
			push(p)
		}
		push(c.pos)
	}
	out := ids[:0]
	for i := 0; i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}

type mergeCand struct {
	rank uint32
	pos  int
	id   int
}

type mergeQueue []mergeCand

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(mergeCand)) }
func (q *mergeQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
