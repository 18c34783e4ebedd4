package infer

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
)

// Sampling chooses how the next token is drawn from the last position's logits. The zero value is greedy.
type Sampling struct {
	Temperature float64 // 0: greedy (argmax); otherwise logits are divided by it
	TopK        int     // keep the K most likely tokens (ties kept); 0: off
	TopP        float64 // keep the smallest most-likely set with probability >= TopP; 0 or 1: off
}

// Validate reports a setting out of range.
func (s Sampling) Validate() error {
	switch {
	case s.Temperature < 0 || math.IsNaN(s.Temperature):
		return fmt.Errorf("infer: temperature %v is negative", s.Temperature)
	case s.TopK < 0:
		return fmt.Errorf("infer: top-k %d is negative", s.TopK)
	case s.TopP < 0 || s.TopP > 1 || math.IsNaN(s.TopP):
		return fmt.Errorf("infer: top-p %v outside [0, 1]", s.TopP)
	}
	return nil
}

// Greedy reports whether s picks the argmax.
func (s Sampling) Greedy() bool { return s.Temperature == 0 }

// RowSeed derives the generator seed of one (id, sample) pair from the run's seed, so that a sample does not
// depend on which batch it ran in or on resumption.
func RowSeed(seed uint64, id string, sample int) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	binary.LittleEndian.PutUint64(b[:], uint64(len(id)))
	h.Write(b[:])
	h.Write([]byte(id))
	binary.LittleEndian.PutUint64(b[:], uint64(sample))
	h.Write(b[:])
	return h.Sum64()
}

// NewRand returns the random source of a row seeded by RowSeed.
func NewRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6d736d)) }

// sampler draws tokens from logits with reusable scratch space (one per goroutine).
type sampler struct {
	s     Sampling
	probs []float64
	cand  []int
}

// Sample draws one token from logits (one row of V values) with s, using one uniform draw of r.
func (s Sampling) Sample(logits []float32, r *rand.Rand) int {
	sm := sampler{s: s}
	return sm.sample(logits, r)
}

func (sm *sampler) sample(logits []float32, r *rand.Rand) int {
	if sm.s.Greedy() {
		return argmax(logits)
	}
	V := len(logits)
	if cap(sm.probs) < V {
		sm.probs = make([]float64, V)
		sm.cand = make([]int, 0, V)
	}
	p := sm.probs[:V]
	cand := sm.cand[:0]
	// Top-k by threshold: the k-th largest logit (ties with it are kept, as transformers does).
	thr := math.Inf(-1)
	if k := sm.s.TopK; k > 0 && k < V {
		thr = kthLargest(logits, k, p)
	}
	mx := float64(logits[argmax(logits)])
	inv := 1 / sm.s.Temperature
	var sum float64
	for i, l := range logits {
		if float64(l) >= thr && !math.IsInf(float64(l), -1) {
			p[i] = math.Exp((float64(l) - mx) * inv)
			sum += p[i]
			cand = append(cand, i)
		}
	}
	if len(cand) == 0 || sum == 0 || math.IsNaN(sum) {
		return argmax(logits)
	}
	for _, i := range cand {
		p[i] /= sum
	}
	if tp := sm.s.TopP; tp > 0 && tp < 1 {
		cand = nucleus(p, cand, tp)
	}
	sm.cand = cand
	var tot float64
	for _, i := range cand {
		tot += p[i]
	}
	u := r.Float64() * tot
	for _, i := range cand {
		u -= p[i]
		if u < 0 {
			return i
		}
	}
	return cand[len(cand)-1]
}

// nucleus returns the smallest set of most likely candidates whose probability reaches tp, most likely first
// (ties by index). Only candidates above a probability floor whose mass already reaches tp are sorted, so a
// 152k vocabulary is rarely sorted whole.
func nucleus(p []float64, cand []int, tp float64) []int {
	sel := cand
	for _, floor := range []float64{1e-3, 1e-5, 1e-7} {
		var mass float64
		n := 0
		for _, i := range cand {
			if p[i] >= floor {
				mass += p[i]
				n++
			}
		}
		if mass >= tp {
			sel = make([]int, 0, n)
			for _, i := range cand {
				if p[i] >= floor {
					sel = append(sel, i)
				}
			}
			break
		}
	}
	slices.SortFunc(sel, func(a, b int) int {
		switch {
		case p[a] > p[b]:
			return -1
		case p[a] < p[b]:
			return 1
		}
		return a - b
	})
	var cum float64
	for n, i := range sel {
		cum += p[i]
		if cum >= tp {
			return sel[:n+1]
		}
	}
	return sel
}

// kthLargest returns the k-th largest value of x (1-based), using scratch (len >= len(x)).
func kthLargest(x []float32, k int, scratch []float64) float64 {
	v := scratch[:len(x)]
	for i, f := range x {
		v[i] = float64(f)
	}
	// Quickselect for index k-1 in descending order.
	lo, hi, want := 0, len(v)-1, k-1
	for lo < hi {
		piv := v[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for v[i] > piv {
				i++
			}
			for v[j] < piv {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case want <= j:
			hi = j
		case want >= i:
			lo = i
		default:
			return v[want]
		}
	}
	return v[want]
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
