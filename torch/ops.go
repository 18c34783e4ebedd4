package torch

/*
#include "msmtorch.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// opCodes maps op names (torch/csrc/ops.def) to the shim's codes, read once from the shim.
var opCodes = sync.OnceValue(func() map[string]C.int {
	m := map[string]C.int{}
	for i := C.int(0); ; i++ {
		p := C.msm_op_name(i)
		if p == nil {
			return m
		}
		m[C.GoString(p)] = i
	}
})

// noGrad counts the NoGrad sections running now; grad is recorded only when it is zero.
var noGrad atomic.Int32

// NoGrad runs f with autograd recording off (process-wide; see the package doc).
func NoGrad(f func()) {
	noGrad.Add(1)
	defer noGrad.Add(-1)
	f()
}

// GradEnabled reports whether ops record autograd history now.
func GradEnabled() bool { return noGrad.Load() == 0 }

func flags() C.int {
	if noGrad.Load() == 0 {
		return C.MSM_FLAG_GRAD
	}
	return 0
}

const maxOpIn = 64

var errFreed = errors.New("torch: use of a freed tensor")

// handles collects the handles of ins, or the first error among them.
func handles(ins []*Tensor, hs []C.msm_tensor) ([]C.msm_tensor, error) {
	for _, t := range ins {
		if t == nil {
			return nil, errors.New("torch: nil tensor argument")
		}
		if t.err != nil {
			return nil, t.err
		}
		if t.h == 0 {
			return nil, errFreed
		}
		hs = append(hs, t.h)
	}
	return hs, nil
}

// call runs op name on ins with integer and float arguments and writes up to len(out) result handles to out.
func call(name string, ins []*Tensor, ia []int64, da []float64, out []C.msm_tensor) (int, error) {
	code, ok := opCodes()[name]
	if !ok {
		return 0, fmt.Errorf("torch: op %q is not in this libmsmtorch (rebuild the shim: make shim)", name)
	}
	var buf [8]C.msm_tensor
	hs, err := handles(ins, buf[:0])
	if err != nil {
		return 0, err
	}
	if len(hs) > maxOpIn {
		return 0, fmt.Errorf("torch: %s: %d tensor arguments, at most %d", name, len(hs), maxOpIn)
	}
	var pin *C.msm_tensor
	if len(hs) > 0 {
		pin = &hs[0]
	}
	var pia *C.int64_t
	if len(ia) > 0 {
		pia = (*C.int64_t)(unsafe.Pointer(&ia[0]))
	}
	var pda *C.double
	if len(da) > 0 {
		pda = (*C.double)(unsafe.Pointer(&da[0]))
	}
	var pout *C.msm_tensor
	if len(out) > 0 {
		pout = &out[0]
	}
	var nout C.int
	if err := check(name, C.msm_op(code, pin, C.int(len(hs)), pia, C.int(len(ia)), pda, C.int(len(da)), flags(),
		pout, C.int(len(out)), &nout)); err != nil {
		return 0, err
	}
	return int(nout), nil
}

// op runs an op with one result.
func op(name string, ins []*Tensor, ia []int64, da []float64) *Tensor {
	if len(ins) <= 3 && len(ia) <= 4 && len(da) <= 2 {
		return opSmall(name, ins, ia, da)
	}
	var out [1]C.msm_tensor
	n, err := call(name, ins, ia, da, out[:])
	if err != nil {
		return errTensor(err)
	}
	if n != 1 {
		return errTensor(fmt.Errorf("torch: %s: %d results, want 1", name, n))
	}
	return newTensor(out[0])
}

// opSmall is op through msm_op_small: every argument by value.
func opSmall(name string, ins []*Tensor, ia []int64, da []float64) *Tensor {
	code, ok := opCodes()[name]
	if !ok {
		return errTensor(fmt.Errorf("torch: op %q is not in this libmsmtorch (rebuild the shim: make shim)", name))
	}
	var h [3]C.msm_tensor
	for i, t := range ins {
		if t == nil {
			return errTensor(errors.New("torch: nil tensor argument"))
		}
		if t.err != nil {
			return t
		}
		if t.h == 0 {
			return errTensor(errFreed)
		}
		h[i] = t.h
	}
	var iv [4]C.int64_t
	for i, v := range ia {
		iv[i] = C.int64_t(v)
	}
	var dv [2]C.double
	for i, v := range da {
		dv[i] = C.double(v)
	}
	r := C.msm_op_small(code, h[0], h[1], h[2], C.int(len(ins)), iv[0], iv[1], iv[2], iv[3], C.int(len(ia)),
		dv[0], dv[1], C.int(len(da)), flags())
	if err := check(name, r.err); err != nil {
		return errTensor(err)
	}
	return newTensor(r.t)
}

func op2(name string, ins []*Tensor, ia []int64, da []float64) (*Tensor, *Tensor) {
	var out [2]C.msm_tensor
	n, err := call(name, ins, ia, da, out[:])
	if err == nil && n != 2 {
		err = fmt.Errorf("torch: %s: %d results, want 2", name, n)
	}
	if err != nil {
		e := errTensor(err)
		return e, e
	}
	return newTensor(out[0]), newTensor(out[1])
}

func opMany(name string, ins []*Tensor, ia []int64) ([]*Tensor, error) {
	var out [maxOpIn]C.msm_tensor
	n, err := call(name, ins, ia, nil, out[:])
	if err != nil {
		return nil, err
	}
	res := make([]*Tensor, n)
	for i := range res {
		res[i] = newTensor(out[i])
	}
	return res, nil
}

func opInPlace(name string, ins []*Tensor, da []float64) error {
	_, err := call(name, ins, nil, da, nil)
	return err
}

func ints(v ...int) []int64 {
	r := make([]int64, len(v))
	for i, x := range v {
		r[i] = int64(x)
	}
	return r
}

func bint(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// ---- shape and indexing ----

// View returns a view with a new shape (one size may be -1).
func (t *Tensor) View(shape ...int64) *Tensor { return op("view", []*Tensor{t}, shape, nil) }

// Reshape returns t with a new shape, copying only when a view is impossible.
func (t *Tensor) Reshape(shape ...int64) *Tensor { return op("reshape", []*Tensor{t}, shape, nil) }

// Transpose swaps dimensions a and b.
func (t *Tensor) Transpose(a, b int) *Tensor { return op("transpose", []*Tensor{t}, ints(a, b), nil) }

// Permute reorders the dimensions.
func (t *Tensor) Permute(dims ...int) *Tensor { return op("permute", []*Tensor{t}, ints(dims...), nil) }

// Contiguous returns t in row-major memory order.
func (t *Tensor) Contiguous() *Tensor { return op("contiguous", []*Tensor{t}, nil, nil) }

// Narrow returns the view of length elements of dimension dim starting at start.
func (t *Tensor) Narrow(dim int, start, length int64) *Tensor {
	return op("narrow", []*Tensor{t}, []int64{int64(dim), start, length}, nil)
}

// Slice returns t[start:end:step] along dim.
func (t *Tensor) Slice(dim int, start, end, step int64) *Tensor {
	return op("slice", []*Tensor{t}, []int64{int64(dim), start, end, step}, nil)
}

// Cat concatenates tensors along dim.
func Cat(ts []*Tensor, dim int) *Tensor { return op("cat", ts, ints(dim), nil) }

// Stack stacks tensors along a new dimension dim.
func Stack(ts []*Tensor, dim int) *Tensor { return op("stack", ts, ints(dim), nil) }

// Split splits t into pieces of size along dim (the last may be smaller).
func (t *Tensor) Split(size int64, dim int) ([]*Tensor, error) {
	return opMany("split", []*Tensor{t}, []int64{size, int64(dim)})
}

// Chunk splits t into n pieces along dim.
func (t *Tensor) Chunk(n, dim int) ([]*Tensor, error) {
	return opMany("chunk", []*Tensor{t}, ints(n, dim))
}

// IndexSelect picks the entries idx (int64, 1-D) along dim.
func (t *Tensor) IndexSelect(dim int, idx *Tensor) *Tensor {
	return op("index_select", []*Tensor{t, idx}, ints(dim), nil)
}

// Gather picks t[..., idx[...], ...] along dim.
func (t *Tensor) Gather(dim int, idx *Tensor) *Tensor {
	return op("gather", []*Tensor{t, idx}, ints(dim), nil)
}

// Scatter returns a copy of t with src written at idx along dim.
func (t *Tensor) Scatter(dim int, idx, src *Tensor) *Tensor {
	return op("scatter", []*Tensor{t, idx, src}, ints(dim), nil)
}

// MaskedFill returns t with value where mask is true.
func (t *Tensor) MaskedFill(mask *Tensor, value float64) *Tensor {
	return op("masked_fill", []*Tensor{t, mask}, nil, []float64{value})
}

// Where picks a where cond is true, else b.
func Where(cond, a, b *Tensor) *Tensor { return op("where", []*Tensor{cond, a, b}, nil, nil) }

// Unsqueeze inserts a dimension of size 1 at dim.
func (t *Tensor) Unsqueeze(dim int) *Tensor { return op("unsqueeze", []*Tensor{t}, ints(dim), nil) }

// Squeeze removes dimension dim if its size is 1.
func (t *Tensor) Squeeze(dim int) *Tensor { return op("squeeze", []*Tensor{t}, ints(dim), nil) }

// Expand broadcasts t to shape without copying (-1 keeps a size).
func (t *Tensor) Expand(shape ...int64) *Tensor { return op("expand", []*Tensor{t}, shape, nil) }

// RepeatInterleave repeats each entry along dim n times.
func (t *Tensor) RepeatInterleave(n int64, dim int) *Tensor {
	return op("repeat_interleave", []*Tensor{t}, []int64{n, int64(dim)}, nil)
}

// Flatten merges dimensions start..end.
func (t *Tensor) Flatten(start, end int) *Tensor {
	return op("flatten", []*Tensor{t}, ints(start, end), nil)
}

// To converts t to dtype (same device).
func (t *Tensor) To(dtype DType) *Tensor {
	return op("to", []*Tensor{t}, []int64{int64(dtype), -1, 0}, nil)
}

// ToDevice moves t to dev (same dtype).
func (t *Tensor) ToDevice(dev Device) *Tensor {
	return op("to", []*Tensor{t}, []int64{-1, int64(dev.Type), int64(dev.Index)}, nil)
}

// Clone copies t (keeping autograd history).
func (t *Tensor) Clone() *Tensor { return op("clone", []*Tensor{t}, nil, nil) }

// Detach returns t without autograd history (sharing memory).
func (t *Tensor) Detach() *Tensor { return op("detach", []*Tensor{t}, nil, nil) }

// ---- math ----

// Matmul is the matrix product with broadcasting (torch.matmul).
func (t *Tensor) Matmul(o *Tensor) *Tensor { return op("matmul", []*Tensor{t, o}, nil, nil) }

// Bmm is the batched matrix product of (B, N, K) and (B, K, M).
func (t *Tensor) Bmm(o *Tensor) *Tensor { return op("bmm", []*Tensor{t, o}, nil, nil) }

// Linear computes x w^T + b (b may be nil).
func Linear(x, w, b *Tensor) *Tensor {
	if b == nil {
		return op("linear", []*Tensor{x, w}, nil, nil)
	}
	return op("linear", []*Tensor{x, w, b}, nil, nil)
}

// Add returns t + o (broadcasting).
func (t *Tensor) Add(o *Tensor) *Tensor { return op("add", []*Tensor{t, o}, nil, nil) }

// AddScaled returns t + alpha*o.
func (t *Tensor) AddScaled(o *Tensor, alpha float64) *Tensor {
	return op("add", []*Tensor{t, o}, nil, []float64{alpha})
}

// Sub returns t - o.
func (t *Tensor) Sub(o *Tensor) *Tensor { return op("sub", []*Tensor{t, o}, nil, nil) }

// Mul returns t * o elementwise.
func (t *Tensor) Mul(o *Tensor) *Tensor { return op("mul", []*Tensor{t, o}, nil, nil) }

// Div returns t / o elementwise.
func (t *Tensor) Div(o *Tensor) *Tensor { return op("div", []*Tensor{t, o}, nil, nil) }

// AddScalar returns t + s.
func (t *Tensor) AddScalar(s float64) *Tensor {
	return op("add_scalar", []*Tensor{t}, nil, []float64{s})
}

// MulScalar returns t * s.
func (t *Tensor) MulScalar(s float64) *Tensor {
	return op("mul_scalar", []*Tensor{t}, nil, []float64{s})
}

// Pow returns t^p.
func (t *Tensor) Pow(p float64) *Tensor { return op("pow", []*Tensor{t}, nil, []float64{p}) }

func unary(name string, t *Tensor) *Tensor { return op(name, []*Tensor{t}, nil, nil) }

// Rsqrt returns 1/sqrt(t).
func (t *Tensor) Rsqrt() *Tensor { return unary("rsqrt", t) }

// Sqrt returns sqrt(t).
func (t *Tensor) Sqrt() *Tensor { return unary("sqrt", t) }

// Exp returns e^t.
func (t *Tensor) Exp() *Tensor { return unary("exp", t) }

// Log returns ln(t).
func (t *Tensor) Log() *Tensor { return unary("log", t) }

// Neg returns -t.
func (t *Tensor) Neg() *Tensor { return unary("neg", t) }

// Abs returns |t|.
func (t *Tensor) Abs() *Tensor { return unary("abs", t) }

// Silu returns t * sigmoid(t).
func (t *Tensor) Silu() *Tensor { return unary("silu", t) }

// Gelu returns GELU(t), exact or with the tanh approximation.
func (t *Tensor) Gelu(tanh bool) *Tensor { return op("gelu", []*Tensor{t}, []int64{bint(tanh)}, nil) }

// Sigmoid returns 1/(1+e^-t).
func (t *Tensor) Sigmoid() *Tensor { return unary("sigmoid", t) }

// Tanh returns tanh(t).
func (t *Tensor) Tanh() *Tensor { return unary("tanh", t) }

// Relu returns max(t, 0).
func (t *Tensor) Relu() *Tensor { return unary("relu", t) }

// Clamp limits t to [lo, hi]; a NaN bound means none.
func (t *Tensor) Clamp(lo, hi float64) *Tensor {
	return op("clamp", []*Tensor{t}, []int64{bint(lo == lo), bint(hi == hi)}, []float64{lo, hi})
}

// Sum sums over dims, keeping them as size 1 if keep.
func (t *Tensor) Sum(keep bool, dims ...int) *Tensor {
	return op("sum", []*Tensor{t}, append([]int64{bint(keep)}, ints(dims...)...), nil)
}

// Mean averages over dims.
func (t *Tensor) Mean(keep bool, dims ...int) *Tensor {
	return op("mean", []*Tensor{t}, append([]int64{bint(keep)}, ints(dims...)...), nil)
}

// SumAll sums all elements.
func (t *Tensor) SumAll() *Tensor { return unary("sum_all", t) }

// MeanAll averages all elements.
func (t *Tensor) MeanAll() *Tensor { return unary("mean_all", t) }

// Max returns the maxima along dim and their indices.
func (t *Tensor) Max(dim int, keep bool) (*Tensor, *Tensor) {
	return op2("max", []*Tensor{t}, []int64{int64(dim), bint(keep)}, nil)
}

// MaxAll returns the largest element.
func (t *Tensor) MaxAll() *Tensor { return unary("max_all", t) }

// Argmax returns the index of the maximum along dim.
func (t *Tensor) Argmax(dim int, keep bool) *Tensor {
	return op("argmax", []*Tensor{t}, []int64{int64(dim), bint(keep)}, nil)
}

// Norm returns the p-norm of all elements.
func (t *Tensor) Norm(p float64) *Tensor { return op("norm", []*Tensor{t}, nil, []float64{p}) }

// Softmax along dim.
func (t *Tensor) Softmax(dim int) *Tensor { return op("softmax", []*Tensor{t}, ints(dim), nil) }

// LogSoftmax along dim.
func (t *Tensor) LogSoftmax(dim int) *Tensor { return op("log_softmax", []*Tensor{t}, ints(dim), nil) }

// Reduction selects how CrossEntropy combines per-token losses.
type Reduction int

// Reductions.
const (
	ReduceNone Reduction = iota // per-token losses
	ReduceSum                   // sum over tokens (weighted)
	ReduceMean                  // sum / total weight of non-ignored tokens
)

// CrossEntropy is the loss of logits (N, C) against integer targets (N); targets equal to ignoreIndex count
// zero; weight (N), if not nil, scales each token's loss. Logits are upcast to float32.
func CrossEntropy(logits, target, weight *Tensor, ignoreIndex int64, r Reduction) *Tensor {
	ins := []*Tensor{logits, target}
	if weight != nil {
		ins = append(ins, weight)
	}
	return op("cross_entropy", ins, []int64{ignoreIndex, int64(r)}, nil)
}

// Embedding looks up rows of weight (V, C) for integer ids.
func Embedding(weight, ids *Tensor) *Tensor { return op("embedding", []*Tensor{weight, ids}, nil, nil) }

// Attention is softmax(q k^T * scale + mask) v for q (B, Hq, T, D) and k, v (B, Hkv, S, D) with Hq a multiple
// of Hkv (grouped-query attention). causal: query t is at key position t+S-T and sees keys up to it. seg (B, S),
// if not nil, holds a segment id per key position; a query sees only keys of its own segment (packed documents,
// padding). scale <= 0 means 1/sqrt(D). On libtorch 2.x this is scaled_dot_product_attention (flash or
// memory-efficient kernels on CUDA); on 1.13 an explicit softmax path with fp32 softmax.
func Attention(q, k, v, seg *Tensor, causal bool, scale float64) *Tensor {
	ins := []*Tensor{q, k, v}
	if seg != nil {
		ins = append(ins, seg)
	}
	return op("attention", ins, []int64{bint(causal)}, []float64{scale})
}

// RopeTable returns the rotary cos and sin tables (B, T, D) for integer positions pos (B, T) and inverse
// frequencies invFreq (D/2), computed in float32 and returned in dtype.
func RopeTable(pos, invFreq *Tensor, dtype DType) (*Tensor, *Tensor) {
	return op2("rope_table", []*Tensor{pos, invFreq}, []int64{int64(dtype)}, nil)
}

// Rope rotates x (B, H, T, D) by the tables from RopeTable, in the half-split layout (rotate_half) of Llama/Qwen.
func Rope(x, cos, sin *Tensor) *Tensor { return op("rope", []*Tensor{x, cos, sin}, nil, nil) }

// RMSNorm returns w * (x / sqrt(mean(x^2) + eps)), normalising in float32 and casting back to x's dtype before
// the weight, as Llama and Qwen do.
func RMSNorm(x, w *Tensor, eps float64) *Tensor {
	return op("rmsnorm", []*Tensor{x, w}, nil, []float64{eps})
}

// SwiGLU returns silu(g) * u, the gated MLP's activation (one fused pass each way on float32 CPU tensors).
func SwiGLU(g, u *Tensor) *Tensor { return op("swiglu", []*Tensor{g, u}, nil, nil) }

// Eq returns t == o elementwise.
func (t *Tensor) Eq(o *Tensor) *Tensor { return op("eq", []*Tensor{t, o}, nil, nil) }

// Ne returns t != o elementwise.
func (t *Tensor) Ne(o *Tensor) *Tensor { return op("ne", []*Tensor{t, o}, nil, nil) }

// Lt returns t < o elementwise.
func (t *Tensor) Lt(o *Tensor) *Tensor { return op("lt", []*Tensor{t, o}, nil, nil) }

// Gt returns t > o elementwise.
func (t *Tensor) Gt(o *Tensor) *Tensor { return op("gt", []*Tensor{t, o}, nil, nil) }

// EqScalar returns t == s elementwise.
func (t *Tensor) EqScalar(s float64) *Tensor { return op("eq_scalar", []*Tensor{t}, nil, []float64{s}) }

// LogicalAnd returns t && o.
func (t *Tensor) LogicalAnd(o *Tensor) *Tensor { return op("logical_and", []*Tensor{t, o}, nil, nil) }

// LogicalNot returns !t.
func (t *Tensor) LogicalNot() *Tensor { return unary("logical_not", t) }

// AllFinite reports whether every element of every tensor is finite (one device sync).
func AllFinite(ts ...*Tensor) (bool, error) {
	r := op("all_finite", ts, nil, nil)
	defer r.Free()
	v, err := r.Item()
	return v != 0, err
}

// TopK returns the k largest values along dim and their indices.
func (t *Tensor) TopK(k int64, dim int) (*Tensor, *Tensor) {
	return op2("topk", []*Tensor{t}, []int64{k, int64(dim)}, nil)
}

// Sort sorts along dim and returns the values and their indices.
func (t *Tensor) Sort(dim int, descending bool) (*Tensor, *Tensor) {
	return op2("sort", []*Tensor{t}, []int64{int64(dim), bint(descending)}, nil)
}

// Cumsum returns the cumulative sum along dim.
func (t *Tensor) Cumsum(dim int) *Tensor { return op("cumsum", []*Tensor{t}, ints(dim), nil) }

// Tril zeroes the elements above the diagonal-th diagonal.
func (t *Tensor) Tril(diagonal int) *Tensor { return op("tril", []*Tensor{t}, ints(diagonal), nil) }

// ---- in place (never recorded by autograd) ----

// CopyFrom copies src's values into t.
func (t *Tensor) CopyFrom(src *Tensor) error { return opInPlace("copy_", []*Tensor{t, src}, nil) }

// ZeroInPlace sets every element to zero.
func (t *Tensor) ZeroInPlace() error { return opInPlace("zero_", []*Tensor{t}, nil) }

// AddInPlace adds alpha*o to t.
func (t *Tensor) AddInPlace(o *Tensor, alpha float64) error {
	return opInPlace("add_", []*Tensor{t, o}, []float64{alpha})
}

// MulScalarInPlace multiplies t by s.
func (t *Tensor) MulScalarInPlace(s float64) error {
	return opInPlace("mul_scalar_", []*Tensor{t}, []float64{s})
}
