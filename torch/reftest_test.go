package torch

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/msmtrain/msmtrain/torch/testenv"

	"github.com/msmtrain/msmtrain/torch/safetensors"
)

func pythonTorch(t testing.TB) string { return testenv.Python(t) }

func runPython(t testing.TB, script string, args ...string) { testenv.RunPython(t, script, args...) }

// input describes one random input of a reference case.
type input struct {
	shape []int64
	kind  string // "f": normal floats; "p": floats in [0.5, 2); "i": ints in [0, n); "b": bools
	n     int64
	grad  bool
	dtype DType // for "f"/"p"; Float32 by default
}

func f(shape ...int64) input  { return input{shape: shape, kind: "f", grad: true} }
func fc(shape ...int64) input { return input{shape: shape, kind: "f"} } // constant float, no grad
func p(shape ...int64) input  { return input{shape: shape, kind: "p", grad: true} }
func ii(n int64, shape ...int64) input {
	return input{shape: shape, kind: "i", n: n}
}
func bb(shape ...int64) input { return input{shape: shape, kind: "b"} }

func (in input) make(r *rand.Rand) *Tensor {
	n := numel(in.shape)
	switch in.kind {
	case "i":
		v := make([]int64, n)
		for i := range v {
			v[i] = r.Int64N(in.n)
		}
		return FromInt64s(v, in.shape...)
	case "b":
		v := make([]bool, n)
		for i := range v {
			v[i] = r.IntN(2) == 1
		}
		return FromBools(v, in.shape...)
	}
	v := make([]float32, n)
	for i := range v {
		if in.kind == "p" {
			v[i] = float32(0.5 + 1.5*r.Float64())
		} else {
			v[i] = float32(r.NormFloat64())
		}
	}
	t := FromFloat32s(v, in.shape...)
	if in.dtype != Float32 {
		c := t.To(in.dtype)
		t.Free()
		t = c
	}
	return t
}

type refCase struct {
	name string
	ins  []input
	gof  func(x []*Tensor) *Tensor
	py   string
	tol  float64
}

func refCases() []refCase {
	seg := func(b, s int64) input { return input{shape: []int64{b, s}, kind: "i", n: 2} }
	return []refCase{
		{"view", []input{f(2, 3, 4)}, func(x []*Tensor) *Tensor { return x[0].View(6, 4) }, "x[0].view(6, 4)", 0},
		{"reshape", []input{f(2, 3, 4)}, func(x []*Tensor) *Tensor { return x[0].Transpose(0, 1).Reshape(3, -1) }, "x[0].transpose(0, 1).reshape(3, -1)", 0},
		{"permute", []input{f(2, 3, 4)}, func(x []*Tensor) *Tensor { return x[0].Permute(2, 0, 1).Contiguous() }, "x[0].permute(2, 0, 1).contiguous()", 0},
		{"narrow", []input{f(5, 4)}, func(x []*Tensor) *Tensor { return x[0].Narrow(0, 1, 3) }, "x[0].narrow(0, 1, 3)", 0},
		{"slice", []input{f(5, 7)}, func(x []*Tensor) *Tensor { return x[0].Slice(1, 1, 7, 2) }, "x[0][:, 1:7:2]", 0},
		{"cat", []input{f(2, 3), f(2, 5)}, func(x []*Tensor) *Tensor { return Cat(x, 1) }, "torch.cat(x, 1)", 0},
		{"stack", []input{f(2, 3), f(2, 3)}, func(x []*Tensor) *Tensor { return Stack(x, 0) }, "torch.stack(x, 0)", 0},
		{"split", []input{f(7, 3)}, func(x []*Tensor) *Tensor {
			s, _ := x[0].Split(3, 0)
			return s[2].MulScalar(2).Add(s[0].Narrow(0, 0, 1))
		}, "x[0].split(3, 0)[2] * 2 + x[0].split(3, 0)[0][:1]", 0},
		{"chunk", []input{f(4, 6)}, func(x []*Tensor) *Tensor { s, _ := x[0].Chunk(3, 1); return s[1].Mul(s[2]) }, "x[0].chunk(3, 1)[1] * x[0].chunk(3, 1)[2]", 1e-6},
		{"index_select", []input{f(6, 4), ii(6, 5)}, func(x []*Tensor) *Tensor { return x[0].IndexSelect(0, x[1]) }, "x[0].index_select(0, x[1])", 0},
		{"gather", []input{f(4, 6), ii(6, 4, 3)}, func(x []*Tensor) *Tensor { return x[0].Gather(1, x[1]) }, "x[0].gather(1, x[1])", 0},
		{"scatter", []input{f(4, 6), input{shape: []int64{4, 1}, kind: "i", n: 6}, f(4, 1)}, func(x []*Tensor) *Tensor { return x[0].Scatter(1, x[1], x[2]) }, "x[0].scatter(1, x[1], x[2])", 0},
		{"masked_fill", []input{f(3, 4), bb(3, 4)}, func(x []*Tensor) *Tensor { return x[0].MaskedFill(x[1], -3.5) }, "x[0].masked_fill(x[1], -3.5)", 0},
		{"where", []input{bb(3, 4), f(3, 4), f(3, 4)}, func(x []*Tensor) *Tensor { return Where(x[0], x[1], x[2]) }, "torch.where(x[0], x[1], x[2])", 0},
		{"unsqueeze_expand", []input{f(3)}, func(x []*Tensor) *Tensor { return x[0].Unsqueeze(0).Expand(4, -1).Squeeze(0) }, "x[0].unsqueeze(0).expand(4, -1).squeeze(0)", 0},
		{"repeat_interleave", []input{f(2, 3, 4)}, func(x []*Tensor) *Tensor { return x[0].RepeatInterleave(2, 1) }, "x[0].repeat_interleave(2, 1)", 0},
		{"flatten", []input{f(2, 3, 4)}, func(x []*Tensor) *Tensor { return x[0].Flatten(1, 2) }, "x[0].flatten(1, 2)", 0},
		{"to_bf16", []input{f(4, 5)}, func(x []*Tensor) *Tensor { return x[0].To(BFloat16).To(Float32) }, "x[0].to(torch.bfloat16).to(torch.float32)", 0},
		{"to_f16", []input{f(4, 5)}, func(x []*Tensor) *Tensor { return x[0].To(Float16).To(Float32) }, "x[0].half().float()", 0},
		{"matmul", []input{f(2, 3, 4), f(4, 5)}, func(x []*Tensor) *Tensor { return x[0].Matmul(x[1]) }, "x[0] @ x[1]", 1e-5},
		{"bmm", []input{f(2, 3, 4), f(2, 4, 5)}, func(x []*Tensor) *Tensor { return x[0].Bmm(x[1]) }, "torch.bmm(x[0], x[1])", 1e-5},
		{"linear", []input{f(2, 3, 4), f(5, 4), f(5)}, func(x []*Tensor) *Tensor { return Linear(x[0], x[1], x[2]) }, "F.linear(x[0], x[1], x[2])", 1e-5},
		{"linear_nobias", []input{f(3, 4), f(5, 4)}, func(x []*Tensor) *Tensor { return Linear(x[0], x[1], nil) }, "F.linear(x[0], x[1])", 1e-5},
		{"arith", []input{f(3, 4), f(4), p(3, 4)}, func(x []*Tensor) *Tensor {
			return x[0].Add(x[1]).Sub(x[1].MulScalar(0.5)).Mul(x[0]).Div(x[2]).AddScalar(1.5)
		}, "((x[0] + x[1]) - x[1] * 0.5) * x[0] / x[2] + 1.5", 1e-5},
		{"add_scaled", []input{f(3, 4), f(3, 4)}, func(x []*Tensor) *Tensor { return x[0].AddScaled(x[1], -0.25) }, "torch.add(x[0], x[1], alpha=-0.25)", 1e-6},
		{"pow", []input{p(3, 4)}, func(x []*Tensor) *Tensor { return x[0].Pow(2.5) }, "x[0].pow(2.5)", 1e-5},
		{"rsqrt", []input{p(3, 4)}, func(x []*Tensor) *Tensor { return x[0].Rsqrt() }, "x[0].rsqrt()", 1e-6},
		{"sqrt", []input{p(3, 4)}, func(x []*Tensor) *Tensor { return x[0].Sqrt() }, "x[0].sqrt()", 1e-6},
		{"exp", []input{f(3, 4)}, func(x []*Tensor) *Tensor { return x[0].Exp() }, "x[0].exp()", 1e-5},
		{"log", []input{p(3, 4)}, func(x []*Tensor) *Tensor { return x[0].Log() }, "x[0].log()", 1e-6},
		{"neg_abs", []input{f(3, 4)}, func(x []*Tensor) *Tensor { return x[0].Neg().Abs() }, "x[0].neg().abs()", 0},
		{"silu", []input{f(3, 4)}, func(x []*Tensor) *Tensor { return x[0].Silu() }, "F.silu(x[0])", 1e-6},
		{"gelu", []input{f(3, 4)}, func(x []*Tensor) *Tensor { return x[0].Gelu(false) }, "F.gelu(x[0])", 1e-6},
		{"gelu_tanh", []input{f(3, 4)}, func(x []*Tensor) *Tensor { return x[0].Gelu(true) }, "F.gelu(x[0], approximate='tanh')", 1e-6},
		{"sigmoid_tanh_relu", []input{f(3, 4)}, func(x []*Tensor) *Tensor { return x[0].Sigmoid().Add(x[0].Tanh()).Add(x[0].Relu()) }, "x[0].sigmoid() + x[0].tanh() + x[0].relu()", 1e-6},
		{"clamp", []input{f(3, 4)}, func(x []*Tensor) *Tensor { return x[0].Clamp(-0.5, 0.7) }, "x[0].clamp(-0.5, 0.7)", 0},
		{"sum", []input{f(2, 3, 4)}, func(x []*Tensor) *Tensor { return x[0].Sum(true, 0, 2) }, "x[0].sum((0, 2), keepdim=True)", 1e-5},
		{"mean", []input{f(2, 3, 4)}, func(x []*Tensor) *Tensor { return x[0].Mean(false, 1) }, "x[0].mean(1)", 1e-6},
		{"sum_mean_all", []input{f(2, 3, 4)}, func(x []*Tensor) *Tensor { return x[0].SumAll().Add(x[0].MeanAll()) }, "x[0].sum() + x[0].mean()", 1e-5},
		{"max", []input{f(3, 5)}, func(x []*Tensor) *Tensor { v, _ := x[0].Max(1, false); return v }, "x[0].max(1).values", 0},
		{"max_all", []input{f(3, 5)}, func(x []*Tensor) *Tensor { return x[0].MaxAll() }, "x[0].max()", 0},
		{"argmax", []input{fc(3, 5)}, func(x []*Tensor) *Tensor { return x[0].Argmax(1, false) }, "x[0].argmax(1)", 0},
		{"norm", []input{f(3, 5)}, func(x []*Tensor) *Tensor { return x[0].Norm(2) }, "x[0].norm(2)", 1e-6},
		{"softmax", []input{f(3, 5)}, func(x []*Tensor) *Tensor { return x[0].Softmax(-1) }, "x[0].softmax(-1)", 1e-6},
		{"log_softmax", []input{f(3, 5)}, func(x []*Tensor) *Tensor { return x[0].LogSoftmax(1) }, "x[0].log_softmax(1)", 1e-6},
		{"cross_entropy_mean", []input{f(6, 7), ii(7, 6)}, func(x []*Tensor) *Tensor { return CrossEntropy(x[0], x[1], nil, -100, ReduceMean) }, "cross_entropy(x[0], x[1], None, -100, 2)", 1e-6},
		{"cross_entropy_ignore_weight", []input{f(8, 5), ii(5, 8), input{shape: []int64{8}, kind: "p"}}, func(x []*Tensor) *Tensor {
			tgt := x[1].MaskedFill(x[1].EqScalar(3), -100)
			return CrossEntropy(x[0], tgt, x[2], -100, ReduceSum)
		}, "cross_entropy(x[0], x[1].masked_fill(x[1] == 3, -100), x[2], -100, 1)", 1e-5},
		// Wider than the fused kernel's 16 lanes with a remainder, large logits (the max is subtracted), ignored rows.
		{"cross_entropy_wide", []input{f(9, 301), ii(301, 9)}, func(x []*Tensor) *Tensor {
			return CrossEntropy(x[0].MulScalar(20), x[1].MaskedFill(x[1].Lt(Full(40, Int64, CPU, 9)), -100), nil, -100, ReduceSum)
		}, "cross_entropy(x[0] * 20, x[1].masked_fill(x[1] < 40, -100), None, -100, 1)", 1e-5},
		{"cross_entropy_none", []input{f(5, 4), ii(4, 5)}, func(x []*Tensor) *Tensor { return CrossEntropy(x[0], x[1], nil, -100, ReduceNone) }, "cross_entropy(x[0], x[1], None, -100, 0)", 1e-6},
		{"embedding", []input{f(10, 4), ii(10, 2, 3)}, func(x []*Tensor) *Tensor { return Embedding(x[0], x[1]) }, "F.embedding(x[1], x[0])", 0},
		{"rmsnorm", []input{f(2, 3, 8), f(8)}, func(x []*Tensor) *Tensor { return RMSNorm(x[0], x[1], 1e-6) }, "rms_norm(x[0], x[1], 1e-6)", 1e-6},
		// Wider rows than the fused kernel's 16 lanes, with a remainder, over more rows than its 64-row blocks.
		{"rmsnorm_wide", []input{f(3, 50, 37), f(37)}, func(x []*Tensor) *Tensor { return RMSNorm(x[0], x[1], 1e-6) }, "rms_norm(x[0], x[1], 1e-6)", 1e-5},
		{"rmsnorm_frozen_weight", []input{f(70, 40), fc(40)}, func(x []*Tensor) *Tensor { return RMSNorm(x[0], x[1], 1e-6) }, "rms_norm(x[0], x[1], 1e-6)", 1e-5},
		{"swiglu", []input{f(3, 7, 45), f(3, 7, 45)}, func(x []*Tensor) *Tensor { return SwiGLU(x[0], x[1]) }, "F.silu(x[0]) * x[1]", 1e-5},
		{"swiglu_large", []input{{shape: []int64{4, 100}, kind: "f", grad: true}, fc(4, 100)}, func(x []*Tensor) *Tensor {
			return SwiGLU(x[0].MulScalar(30), x[1])
		}, "F.silu(x[0] * 30) * x[1]", 1e-5},
		{"rmsnorm_bf16", []input{{shape: []int64{2, 3, 8}, kind: "f", dtype: BFloat16}, {shape: []int64{8}, kind: "f", dtype: BFloat16}}, func(x []*Tensor) *Tensor { return RMSNorm(x[0], x[1], 1e-5).To(Float32) }, "rms_norm(x[0], x[1], 1e-5).float()", 0},
		{"rope", []input{f(2, 3, 5, 8), ii(50, 2, 5), input{shape: []int64{4}, kind: "p"}}, func(x []*Tensor) *Tensor {
			c, s := RopeTable(x[1], x[2], Float32)
			return Rope(x[0], c, s)
		}, "rope(x[0], *rope_table(x[1], x[2]))", 1e-5},
		// As the decoder calls it: the projections' (B, T, H, D) seen as (B, H, T, D).
		{"rope_transposed", []input{f(2, 5, 3, 8), ii(50, 2, 5), input{shape: []int64{4}, kind: "p"}}, func(x []*Tensor) *Tensor {
			c, s := RopeTable(x[1], x[2], Float32)
			return Rope(x[0].Transpose(1, 2), c, s).MulScalar(1.5)
		}, "rope(x[0].transpose(1, 2), *rope_table(x[1], x[2])) * 1.5", 1e-5},
		{"attention_causal", []input{f(2, 4, 6, 8), f(2, 4, 6, 8), f(2, 4, 6, 8)}, func(x []*Tensor) *Tensor { return Attention(x[0], x[1], x[2], nil, true, 0) }, "attention(x[0], x[1], x[2], None, True)", 1e-5},
		{"attention_gqa_docs", []input{f(2, 4, 7, 8), f(2, 2, 7, 8), f(2, 2, 7, 8), seg(2, 7)}, func(x []*Tensor) *Tensor {
			s := x[3].Cumsum(1) // monotone segment ids: documents packed one after another
			return Attention(x[0], x[1], x[2], s, true, 0)
		}, "attention(x[0], x[1], x[2], x[3].cumsum(1), True)", 1e-5},
		{"attention_kvcache", []input{f(2, 4, 2, 8), f(2, 2, 6, 8), f(2, 2, 6, 8)}, func(x []*Tensor) *Tensor { return Attention(x[0], x[1], x[2], nil, true, 0.3) }, "attention(x[0], x[1], x[2], None, True, 0.3)", 1e-5},
		{"attention_gqa3", []input{f(2, 6, 5, 4), f(2, 2, 5, 4), f(2, 2, 5, 4)}, func(x []*Tensor) *Tensor { return Attention(x[0], x[1], x[2], nil, true, 0) }, "attention(x[0], x[1], x[2], None, True)", 1e-5},
		{"attention_full", []input{f(1, 2, 5, 4), f(1, 2, 5, 4), f(1, 2, 5, 4)}, func(x []*Tensor) *Tensor { return Attention(x[0], x[1], x[2], nil, false, 0) }, "attention(x[0], x[1], x[2], None, False)", 1e-5},
		{"compare", []input{fc(3, 4), fc(3, 4)}, func(x []*Tensor) *Tensor {
			return x[0].Lt(x[1]).LogicalAnd(x[0].Gt(x[1]).LogicalNot()).LogicalAnd(x[0].Ne(x[1])).LogicalAnd(x[0].Eq(x[0]))
		}, "(x[0] < x[1]) & ~(x[0] > x[1]) & (x[0] != x[1]) & (x[0] == x[0])", 0},
		{"topk", []input{f(3, 6)}, func(x []*Tensor) *Tensor { v, _ := x[0].TopK(2, 1); return v }, "x[0].topk(2, 1).values", 0},
		{"sort", []input{f(3, 6)}, func(x []*Tensor) *Tensor { v, _ := x[0].Sort(1, true); return v }, "x[0].sort(1, True).values", 0},
		{"cumsum_tril", []input{f(4, 4)}, func(x []*Tensor) *Tensor { return x[0].Cumsum(0).Tril(0) }, "x[0].cumsum(0).tril(0)", 1e-6},
	}
}

// TestOpsAgainstPyTorch checks every op's forward and backward against PyTorch on random inputs.
func TestOpsAgainstPyTorch(t *testing.T) {
	pythonTorch(t)
	dir := t.TempDir()
	base := LiveTensors()
	cases := refCases()
	type pyCase struct {
		Name string `json:"name"`
		Py   string `json:"py"`
		Grad []bool `json:"grad"`
	}
	var pc []pyCase
	inputs := map[string]*Tensor{}
	results := map[string]map[string]*Tensor{}
	for ci, c := range cases {
		r := rand.New(rand.NewPCG(uint64(ci), 7))
		xs := make([]*Tensor, len(c.ins))
		grads := make([]bool, len(c.ins))
		for i, in := range c.ins {
			xs[i] = in.make(r)
			inputs[c.name+"/in"+strconv.Itoa(i)] = xs[i]
			if in.grad {
				grads[i] = true
				xs[i] = xs[i].Detach().SetRequiresGrad(true)
			}
		}
		y := c.gof(xs)
		if err := y.Err(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		res := map[string]*Tensor{"out": y.Detach()}
		anyGrad := false
		for _, g := range grads {
			anyGrad = anyGrad || g
		}
		if anyGrad {
			g := input{shape: y.Shape(), kind: "f"}.make(r)
			inputs[c.name+"/g"] = g
			loss := y.To(Float32).Mul(g).SumAll()
			if err := loss.Backward(nil); err != nil {
				t.Fatalf("%s: backward: %v", c.name, err)
			}
			for i, gr := range grads {
				if gr {
					res["grad"+strconv.Itoa(i)] = xs[i].Grad()
				}
			}
		}
		results[c.name] = res
		pc = append(pc, pyCase{c.name, c.py, grads})
	}
	cj, _ := json.Marshal(pc)
	if err := os.WriteFile(filepath.Join(dir, "cases.json"), cj, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SaveFile(filepath.Join(dir, "in.safetensors"), inputs, nil); err != nil {
		t.Fatal(err)
	}
	runPython(t, "ref_ops.py", filepath.Join(dir, "cases.json"), filepath.Join(dir, "in.safetensors"), filepath.Join(dir, "out.safetensors"))
	f, err := safetensors.Open(filepath.Join(dir, "out.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for key, got := range results[c.name] {
				want := LoadTensor(f, c.name+"/"+key, CPU)
				if want.Err() != nil {
					t.Fatalf("%s: python result missing: %v", key, want.Err())
				}
				d, err := maxAbsDiff(got, want)
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				t.Logf("%s: max |diff| %.3g", key, d)
				if d > c.tol {
					t.Errorf("%s: max |diff| %.3g > %.3g", key, d, c.tol)
				}
				want.Free()
			}
		})
	}
	for _, m := range results {
		for _, x := range m {
			x.Free()
		}
	}
	for _, x := range inputs {
		x.Free()
	}
	_ = base
}

// maxAbsDiff compares shapes and returns the largest elementwise difference (NaN if either has a NaN).
func maxAbsDiff(a, b *Tensor) (float64, error) {
	sa, sb := a.Shape(), b.Shape()
	if len(sa) != len(sb) {
		return 0, &shapeErr{sa, sb}
	}
	for i := range sa {
		if sa[i] != sb[i] {
			return 0, &shapeErr{sa, sb}
		}
	}
	va, err := a.Float64s()
	if err != nil {
		return 0, err
	}
	vb, err := b.Float64s()
	if err != nil {
		return 0, err
	}
	d := 0.0
	for i := range va {
		x := math.Abs(va[i] - vb[i])
		if math.IsNaN(x) {
			return math.NaN(), nil
		}
		d = max(d, x)
	}
	return d, nil
}

type shapeErr struct{ a, b []int64 }

func (e *shapeErr) Error() string {
	j, _ := json.Marshal([][]int64{e.a, e.b})
	return "shape mismatch " + string(j)
}
