package plan

import "slices"

// The memory of one decoder layer, per token, from the ops of decoder.block as it runs them through the Go
// binding. Two facts of that binding shape it:
//
//   - every tensor a layer's Go code creates (each op's output, views aside) lives until the layer's scope
//     closes: the block's forward holds all its intermediate tensors at once at its end, not only those autograd
//     keeps; a checkpointed layer's are freed when its recompute returns, before its backward runs;
//   - autograd keeps only what the gradients of inputs that need one use (a frozen projection keeps its weight,
//     not its input), plus tensors inside an op that Go never sees (RMSNorm's fp32 input and square, attention's
//     probabilities).

// layerOp is one op of decoder.block, per token, in bytes.
type layerOp struct {
	name  string
	out   int64 // its output, held by Go until the layer ends (0 for a view)
	kept  bool  // autograd keeps the output for backward
	saved int64 // tensors inside the op autograd keeps
	tmp   int64 // the op's own transient tensors, freed when it returns
}

// terms are the per-token bytes of one decoder layer in training.
type terms struct {
	input    int64 // the layer's input, when its own graph keeps it (fp32: RMSNorm computes on it) and no checkpoint does
	saved    int64 // kept for backward once the layer's forward returned, the input aside
	mlpSaved int64 // the part of saved that the MLP's backward frees before the attention's runs
	forward  int64 // the most the layer's forward holds with grad on (the recompute), the input aside
	noGrad   int64 // the same without grad (a checkpointed layer's first forward)
	backward int64 // the most the layer's backward allocates on top of what is still saved
}

// layerOps lists decoder.block's ops; mlp is the index of the first op of the MLP half.
func (r Run) layerOps() (ops []layerOp, mlp int) {
	m := r.Model
	e := dtypeBytes(r.DType)
	f32 := e == 4
	ft := r.LoRA == nil
	C, I, T, H := int64(m.Hidden), int64(m.Intermediate), int64(r.SeqLen), int64(m.Heads)
	Hd, Kd := int64(m.Heads*m.HeadDim), int64(m.KVHeads*m.HeadDim)
	lora := func(p string) bool { return !ft && slices.Contains(r.LoRA.Targets, p) }
	fused := f32 && r.fusedKernels() // RMSNorm, rope, attention's softmax, SwiGLU as one op each (torch/csrc/kernels.cc)
	add := func(op layerOp) int { ops = append(ops, op); return len(ops) - 1 }
	keep := func(i int) {
		if i >= 0 {
			ops[i].kept = true
		}
	}
	// norm is torch.RMSNorm of the output of op in (-1: the layer's input) of width w: in fp32 on an fp32 copy
	// of the input (the input itself in fp32), whose square mean's backward keeps (libtorch 1.13); the normalised
	// input too when the weight trains. The fused CPU kernel keeps the input and a float per row.
	norm := func(name string, in int, w int64) int {
		if fused {
			keep(in)
			return add(layerOp{name: name, out: e * w, saved: 4})
		}
		o := layerOp{name: name, out: e * w, saved: 4 * w, tmp: 4 * w}
		if f32 {
			keep(in)
		} else {
			o.saved += 4 * w
			o.tmp += e * w
		}
		if ft {
			o.saved += e * w
		}
		return add(o)
	}
	// linear is decoder's linear (x W^T, plus the fp32 LoRA branch (alpha/r) x A^T B^T on adapted projections)
	// of op in's output, w wide, to out: base, then to fp32, through A and B, scaled, summed, cast back.
	linear := func(name string, in int, w, out int64) int {
		y := add(layerOp{name: name, out: e * out})
		if ft {
			keep(in)
		}
		if !lora(name) {
			return y
		}
		// The branch runs in a scope of its own: only its result outlives it. Autograd keeps the fp32 input and
		// x A^T; the product with B, its scaling and the fp32 sum are transient.
		rk := int64(r.LoRA.Rank)
		o := layerOp{name: name + " lora", out: e * out, saved: 4 * rk, tmp: 3 * 4 * out}
		if f32 {
			keep(in)         // To(float32) is the input itself
			o.tmp -= 4 * out // the sum is the result
		} else {
			o.saved += 4 * w
			o.tmp += 4 * w
		}
		return add(o)
	}
	h := norm("input_layernorm", -1, C)
	q := linear("q_proj", h, C, Hd)
	k := linear("k_proj", h, C, Kd)
	v := linear("v_proj", h, C, Kd)
	if m.QKNorm {
		q = norm("q_norm", q, Hd)
		k = norm("k_norm", k, Kd)
	}
	if fused { // one pass, no temporaries
		q = add(layerOp{name: "rope q", out: e * Hd})
		k = add(layerOp{name: "rope k", out: e * Kd})
	} else {
		q = add(layerOp{name: "rope q", out: e * Hd, tmp: 3 * e * Hd})
		k = add(layerOp{name: "rope k", out: e * Kd, tmp: 3 * e * Kd})
	}
	// attention keeps q, k and v themselves (grouped-query attention without copies of k and v: libtorch 1.13's
	// path stacks the query heads of a kv head, 2.5+ passes enable_gqa)
	att := layerOp{name: "attention", out: e * Hd, tmp: 3 * T}
	keep(q)
	keep(k)
	keep(v)
	switch {
	case r.attention() == Dense && fused:
		// the CPU's fused softmax: the scores (B, H, T, T) and the (B, 1, T, T) mask, transient; the
		// probabilities (kept)
		att.saved += 4 * H * T
		att.tmp += 4*H*T + T
	case r.attention() == Dense:
		// scores (scaled in place) and masked (B, H, T, T) in the model's dtype, the probabilities in fp32 (kept)
		// and cast back (kept), the (B, 1, T, T) mask (kept)
		att.saved += T + 4*H*T
		att.tmp += 2 * e * H * T
		if !f32 {
			att.saved += e * H * T
			att.tmp += 4 * H * T
		}
	default:
		// the output, the log-sum-exp and the mask as an additive bias in the model's dtype are kept
		att.kept = true
		att.saved += 4*H + e*T
	}
	a := add(att)
	a = add(layerOp{name: "attention transposed", out: e * Hd})
	linear("o_proj", a, Hd, C)
	x1 := add(layerOp{name: "residual", out: e * C})
	mlp = len(ops)
	h2 := norm("post_attention_layernorm", x1, C)
	g := linear("gate_proj", h2, C, I)
	keep(g)
	u := linear("up_proj", h2, C, I)
	keep(u)
	if !fused {
		add(layerOp{name: "silu", out: e * I, kept: true}) // kept by the product
	}
	p := add(layerOp{name: "silu(gate) x up", out: e * I})
	linear("down_proj", p, I, C)
	add(layerOp{name: "residual (the output)", out: e * C})
	return ops, mlp
}

// layerTerms sums the ops of a layer: the forward's running peak, what autograd keeps, and what backward adds.
func (r Run) layerTerms() terms {
	m := r.Model
	e := dtypeBytes(r.DType)
	f32 := e == 4
	C, I, T, H := int64(m.Hidden), int64(m.Intermediate), int64(r.SeqLen), int64(m.Heads)
	Hd := int64(m.Heads * m.HeadDim)
	ops, mlp := r.layerOps()
	var t terms
	if f32 {
		t.input = 4 * C
	}
	var outs, saved int64
	for i, op := range ops {
		outs += op.out
		saved += op.saved
		t.forward = max(t.forward, outs+saved+op.tmp)
		t.noGrad = max(t.noGrad, outs+op.saved+op.tmp)
		kept := op.saved
		if op.kept {
			kept += op.out
		}
		t.saved += kept
		if i >= mlp {
			t.mlpSaved += kept
		}
	}
	// Backward: the MLP's (down_proj's input gradient, base and LoRA (fp32, cast), or the product's and silu's
	// gradients), then the attention's once the MLP's tensors are freed.
	mlpB := 3 * e * I
	if r.LoRA != nil && slices.Contains(r.LoRA.Targets, "down_proj") {
		b := e*I + 4*I
		if !f32 {
			b += e * I
		}
		mlpB = max(mlpB, b)
	}
	var attnB int64
	switch r.attention() {
	case Dense:
		attnB = 8*H*T + 3*e*Hd // the probabilities' gradient and the scores' (fp32), q, k, v's
	default:
		attnB = 3*e*Hd + 4*Hd // q, k, v's gradients, an fp32 accumulator for q's
	}
	t.backward = max(mlpB, attnB-t.mlpSaved)
	return t
}
