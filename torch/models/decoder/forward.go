package decoder

import "github.com/msmtrain/msmtrain/torch"

// Inputs of a batch of packed rows, all (B, T) int64 on the model's device:
//   ids: token ids
//   pos: position of each token within its document (restarts at 0 for every document)
//   seg: document id of each position (a token attends only to earlier tokens of its own document); 0 marks
//        padding. nil means one document per row.

// Forward returns the logits (B, T, V) in float32. Every intermediate tensor is freed before it returns; the
// logits land in the caller's scope, if any.
func (m *Model) Forward(ids, pos, seg *torch.Tensor) *torch.Tensor {
	s := torch.NewScope()
	defer s.Close()
	h := m.hidden(ids, pos, seg, nil)                          // (B, T, C)
	logits := torch.Linear(h, m.head(), nil).To(torch.Float32) // (B, T, V)
	s.Keep(logits)
	return logits
}

// hidden runs the embedding, every block and the final norm: (B, T) ids -> (B, T, C).
func (m *Model) hidden(ids, pos, seg *torch.Tensor, cache *Cache) *torch.Tensor {
	x := torch.Embedding(m.embedding(), ids)                  // (B, T, C)
	cos, sin := torch.RopeTable(pos, m.invFreq, m.opts.DType) // (B, T, D) each
	if cache != nil {
		seg = cache.appendSeg(seg)
	}
	for i := range m.layers {
		s := torch.NewScope()
		var y *torch.Tensor
		if m.ckpt != nil && cache == nil && torch.GradEnabled() {
			in := []*torch.Tensor{x, cos, sin}
			if seg != nil {
				in = append(in, seg)
			}
			out, err := m.ckpt[i].Call(in...)
			if err != nil {
				y = torch.Errorf("decoder: layer %d: %w", i, err)
			} else {
				y = out[0]
			}
		} else {
			y = m.block(m.layerAt(i), x, cos, sin, seg, cache, i)
		}
		s.Keep(y)
		s.Close()
		x.Free() // the graph keeps what backward needs
		x = y
	}
	if cache != nil {
		cache.n += ids.Size(1)
	}
	return torch.RMSNorm(x, m.finalNorm(), m.Config.RMSNormEps) // (B, T, C)
}

// block is one decoder layer: x + attn(norm(x)), then + mlp(norm(x)).
func (m *Model) block(l *layer, x, cos, sin, seg *torch.Tensor, cache *Cache, li int) *torch.Tensor {
	c := m.Config
	B, T := x.Size(0), x.Size(1)
	H, KV, D := int64(c.NumHeads), int64(c.NumKVHeads), int64(c.HeadSize())
	eps := c.RMSNormEps

	h := torch.RMSNorm(x, l.inNorm, eps)                    // (B, T, C)
	q := m.linear(l.q, h).View(B, T, H, D)                  // (B, T, H, D)
	k := m.linear(l.k, h).View(B, T, KV, D)                 // (B, T, KV, D)
	v := m.linear(l.v, h).View(B, T, KV, D).Transpose(1, 2) // (B, KV, T, D)
	if c.qkNorm() {                                         // Qwen3: RMSNorm over each head, before RoPE
		q = torch.RMSNorm(q, l.qNorm, eps)
		k = torch.RMSNorm(k, l.kNorm, eps)
	}
	q = torch.Rope(q.Transpose(1, 2), cos, sin) // (B, H, T, D)
	k = torch.Rope(k.Transpose(1, 2), cos, sin) // (B, KV, T, D)
	if cache != nil {
		k, v = cache.append(li, k, v) // (B, KV, S, D): every cached key so far
	}
	a := torch.Attention(q, k, v, seg, true, sqrtInv(int(D))) // (B, H, T, D)
	a = a.Transpose(1, 2).Reshape(B, T, H*D)                  // (B, T, H*D)
	x = x.Add(m.linear(l.o, a))                               // (B, T, C)

	h = torch.RMSNorm(x, l.postNorm, eps)                     // (B, T, C)
	g := torch.SwiGLU(m.linear(l.gate, h), m.linear(l.up, h)) // (B, T, I)
	return x.Add(m.linear(l.down, g))                         // (B, T, C)
}

// linear is x W^T + b, plus (alpha/r) dropout(x) A^T B^T in float32 when the projection has a LoRA adapter (the
// PEFT formula: the sum is formed in float32 and cast back to x's dtype).
func (m *Model) linear(l *linear, x *torch.Tensor) *torch.Tensor {
	y := torch.Linear(x, l.w, l.b) // (..., out)
	if l.loraA == nil {
		return y
	}
	// The branch's intermediates are freed here, not at the end of the layer (autograd keeps what it needs): on
	// an adapted projection they are several fp32 tensors of the output's size.
	s := torch.NewScope()
	defer s.Close()
	xl := x
	if m.lora.Dropout > 0 && torch.GradEnabled() {
		xl = torch.Dropout(x, m.lora.Dropout, m.gen)
	}
	if m.opts.DType != torch.Float32 {
		xl = xl.To(torch.Float32)
	}
	d := torch.Linear(torch.Linear(xl, l.loraA, nil), l.loraB, nil).MulScalar(m.lora.Scale()) // (..., out) fp32
	out := y.Add(d)
	if m.opts.DType != torch.Float32 {
		out = out.To(m.opts.DType)
	}
	s.Keep(out)
	return out
}

// Loss returns the sum over positions of weights * cross-entropy(logits, targets) as a float32 scalar; targets
// (B, T) int64 equal to -100 count zero, weights (B, T) may be nil (all one). Only positions with a target are
// projected onto the vocabulary, in chunks of Options.LossChunk logits, each recomputed in backward, so the full
// fp32 logits of long rows never exist at once. The caller divides by its global token count.
func (m *Model) Loss(ids, pos, seg, targets, weights *torch.Tensor) *torch.Tensor {
	return m.LossAt(ids, pos, seg, targets, weights, nil)
}

// LossAt is Loss given the flat indices (row-major over targets) of the positions with a target, which the caller
// knows on the host (the loader does): without them they are read from targets, a device-to-host copy that on a
// GPU makes the host wait for all the work queued before it.
func (m *Model) LossAt(ids, pos, seg, targets, weights *torch.Tensor, rows []int64) *torch.Tensor {
	s := torch.NewScope()
	defer s.Close()
	h := m.hidden(ids, pos, seg, nil) // (B, T, C)
	loss := m.headLoss(h, targets, weights, rows, false)
	s.Keep(loss)
	return loss
}

// LogProbs returns log p(targets[b, t] | ids[b, :t+1]) (B, T) in float32, 0 where the target is -100, without
// building a graph and without materialising the full logits.
func (m *Model) LogProbs(ids, pos, seg, targets *torch.Tensor) *torch.Tensor {
	var out *torch.Tensor
	torch.NoGrad(func() {
		s := torch.NewScope()
		defer s.Close()
		h := m.hidden(ids, pos, seg, nil) // (B, T, C)
		out = m.headLoss(h, targets, nil, nil, true).Neg().View(targets.Shape()...)
		s.Keep(out)
	})
	return out
}

// headLoss projects h (B, T, C) onto the vocabulary chunk by chunk and returns the weighted CE sum (perToken:
// the per-position CE (B*T), zero where ignored). valid are the flat indices of the positions with a target, nil:
// read from targets.
func (m *Model) headLoss(h, targets, weights *torch.Tensor, valid []int64, perToken bool) *torch.Tensor {
	C, V := int64(m.Config.HiddenSize), int64(m.Config.VocabSize)
	hf := h.Reshape(-1, C)    // (N, C)
	tf := targets.Reshape(-1) // (N)
	N := tf.Size(0)
	if err := hf.Err(); err != nil {
		return hf
	}
	if hf.Size(0) != N {
		return torch.Errorf("decoder: targets %v do not match the inputs (%d positions)", targets.Shape(), hf.Size(0))
	}
	var wf *torch.Tensor
	if weights != nil {
		wf = weights.Reshape(-1).To(torch.Float32)
	}
	head := m.head() // (V, C), gathered once when sharded: every rank, whatever its targets
	chunk := m.opts.LossChunk
	if chunk <= 0 {
		chunk = DefaultLossChunk
	}
	rows := max(chunk/V, 1)
	if perToken {
		var parts []*torch.Tensor
		for st := int64(0); st < N; st += rows {
			n := min(rows, N-st)
			logits := torch.Linear(hf.Narrow(0, st, n), head, nil) // (n, V)
			parts = append(parts, torch.CrossEntropy(logits, tf.Narrow(0, st, n), nil, -100, torch.ReduceNone))
		}
		return torch.Cat(parts, 0) // (N)
	}
	// Keep only positions that have a target: AFT masks most of each row.
	idx := valid
	if idx == nil {
		var err error
		if idx, err = validRows(tf); err != nil {
			return torch.Errorf("decoder: loss targets: %w", err)
		}
	}
	if len(idx) == 0 {
		z := hf.SumAll()
		if m.sharded() && m.lora == nil {
			z = z.Add(head.SumAll()) // the head's backward is a collective: every rank must take part
		}
		return z.MulScalar(0).To(torch.Float32) // zero, still connected to the graph
	}
	it := torch.FromInt64s(idx).ToDevice(h.Device())
	hv, tv := hf.IndexSelect(0, it), tf.IndexSelect(0, it) // (n, C), (n)
	var wv *torch.Tensor
	if wf != nil {
		wv = wf.IndexSelect(0, it)
	}
	n := int64(len(idx))
	if n <= rows {
		return m.chunkLoss(hv, tv, head, wv)
	}
	var total *torch.Tensor
	for st := int64(0); st < n; st += rows {
		k := min(rows, n-st)
		in := []*torch.Tensor{hv.Narrow(0, st, k), tv.Narrow(0, st, k), head}
		if wv != nil {
			in = append(in, wv.Narrow(0, st, k))
		}
		out, err := m.lossF.Call(in...)
		if err != nil {
			return torch.Errorf("decoder: loss chunk at %d: %w", st, err)
		}
		if total == nil {
			total = out[0]
		} else {
			total = total.Add(out[0])
		}
	}
	return total
}

// chunkLoss is the weighted CE sum of hidden rows h (n, C) against targets (n) with the head (V, C); w may be nil.
func (m *Model) chunkLoss(h, t, head, w *torch.Tensor) *torch.Tensor {
	logits := torch.Linear(h, head, nil) // (n, V)
	return torch.CrossEntropy(logits, t, w, -100, torch.ReduceSum)
}

// validRows returns the indices of targets that are not -100.
func validRows(t *torch.Tensor) ([]int64, error) {
	v, err := t.Int64s()
	if err != nil {
		return nil, err
	}
	idx := make([]int64, 0, len(v))
	for i, x := range v {
		if x != -100 {
			idx = append(idx, int64(i))
		}
	}
	return idx, nil
}
