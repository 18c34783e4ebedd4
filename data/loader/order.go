package loader

import (
	"math/bits"
	"sort"

	"github.com/msmtrain/msmtrain/data/shard"
)

// splitmix64 is a small, fully specified generator, so the order never
// depends on the Go version.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// below returns a uniform integer in [0, n) (Lemire's method).
func (s *splitmix64) below(n uint64) uint64 {
	hi, lo := bits.Mul64(s.next(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(s.next(), n)
		}
	}
	return hi
}

func mix(seed uint64, xs ...uint64) uint64 {
	s := splitmix64(seed)
	v := s.next()
	for _, x := range xs {
		s = splitmix64(v ^ x)
		v = s.next()
	}
	return v
}

// permute fills p with a permutation of 0..len(p)-1 (Fisher-Yates).
func permute(p []int32, seed uint64) {
	for i := range p {
		p[i] = int32(i)
	}
	s := splitmix64(seed)
	for i := len(p) - 1; i > 0; i-- {
		j := s.below(uint64(i + 1))
		p[i], p[j] = p[j], p[i]
	}
}

// blockRef is one block of the dataset.
type blockRef struct {
	shard, block int
	first        int // first local doc in the shard
	n            int // docs
	base         int64
}

// epochOrder is the document order of one epoch.
type epochOrder struct {
	ds         *shard.Dataset
	seed       uint64
	epoch      int
	blocks     []blockRef // permuted
	group      int        // blocks per group
	groupStart []int64    // order position of each group's first doc; len = groups+1
}

func allBlocks(ds *shard.Dataset) []blockRef {
	var refs []blockRef
	var base int64
	for s, r := range ds.Shards() {
		for b := range r.NumBlocks() {
			first, n := r.BlockDocs(b)
			refs = append(refs, blockRef{shard: s, block: b, first: first, n: n, base: base + int64(first)})
		}
		base += int64(r.NumDocs())
	}
	return refs
}

func newEpochOrder(ds *shard.Dataset, all []blockRef, seed uint64, epoch, group int) *epochOrder {
	perm := make([]int32, len(all))
	permute(perm, mix(seed, uint64(epoch), 0xb10c))
	o := &epochOrder{ds: ds, seed: seed, epoch: epoch, group: group, blocks: make([]blockRef, len(all))}
	for i, p := range perm {
		o.blocks[i] = all[p]
	}
	var pos int64
	for i, b := range o.blocks {
		if i%group == 0 {
			o.groupStart = append(o.groupStart, pos)
		}
		pos += int64(b.n)
	}
	o.groupStart = append(o.groupStart, pos)
	return o
}

func (o *epochOrder) numDocs() int64 { return o.groupStart[len(o.groupStart)-1] }

// groupOf returns the group holding order position p.
func (o *epochOrder) groupOf(p int64) int {
	return sort.Search(len(o.groupStart)-1, func(g int) bool { return o.groupStart[g+1] > p })
}

// groupView resolves positions inside one group.
type groupView struct {
	g      int
	blocks []blockRef
	starts []int // doc offset of each block inside the group
	perm   []int32
}

func (o *epochOrder) view(g int, v *groupView) {
	v.g = g
	v.blocks = o.blocks[g*o.group : min((g+1)*o.group, len(o.blocks))]
	v.starts = v.starts[:0]
	n := 0
	for _, b := range v.blocks {
		v.starts = append(v.starts, n)
		n += b.n
	}
	v.starts = append(v.starts, n)
	if cap(v.perm) < n {
		v.perm = make([]int32, n)
	}
	v.perm = v.perm[:n]
	permute(v.perm, mix(o.seed, uint64(o.epoch), uint64(g)+1))
}

// locate maps index k of the group to (block within group, doc within block).
func (v *groupView) locate(k int64) (blk, doc int) {
	d := int(v.perm[k])
	blk = sort.Search(len(v.blocks), func(i int) bool { return v.starts[i+1] > d })
	return blk, d - v.starts[blk]
}
