package decoder

import (
	"errors"
	"fmt"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// Sharded base weights (Options.Shard, msmtrain's dist.shard = "full"): the semantics of FSDP / ZeRO-3. The base
// weights are grouped in units (the embedding; each layer's matrices, and its norms and biases; the final norm;
// the head when it is not tied); each unit's tensors are flattened into one vector, padded to a multiple of the
// group's size, and each rank keeps its 1/world slice. A unit is all-gathered just before it is used and its
// whole tensors live only in the scope of that use: a layer's inside its (checkpointed) block, gathered again when
// backward recomputes the block; the head once per loss (kept, as an input of the loss chunks, until their
// backward). Every rank gathers the same units in the same order, whatever its data: a forward pass makes the
// same collectives on every rank.
//
// With a LoRA adapter the base is frozen and the adapter whole on every rank. In full fine-tuning the slices are
// the trainable parameters (Params, with optim.Param.Whole set), kept in float32 whatever the model's dtype
// (master weights; gathered in the model's dtype): the gather is differentiable, and its backward sums the whole
// gradient over the ranks and leaves each rank the gradient of its slice (a reduce-scatter).

// unit is a group of base weights stored as one flat shard.
type unit struct {
	name  string
	shard *torch.Tensor // this rank's slice of the flattened, padded unit (kept out of every scope)
	numel int64         // elements of the whole unit
	decay bool          // weight decay applies (matrices), or not (norms, biases)
}

// ErrShardedBase is returned for what needs the whole base weights in one process, which a sharded model lacks.
var ErrShardedBase = errors.New("decoder: the base weights are sharded over the processes (dist.shard = \"full\")")

// checkShard refuses sharding without activation checkpointing (the gathered weights would be kept for backward).
func (o Options) checkShard() error {
	if o.Shard != nil && !o.Checkpoint {
		return errors.New("decoder: sharded weights need activation checkpointing (without it the gathered weights " +
			"of every layer would be kept for backward)")
	}
	return nil
}

// sharded reports whether the base weights are sharded.
func (m *Model) sharded() bool { return m.opts.Shard != nil }

// shardUnit replaces the whole tensors of g (loaded or initialised, all of the model's dtype) by this rank's slice
// of their concatenation, and frees them. trainable slices are float32 and require grad.
func (m *Model) shardUnit(g unitGroup, trainable bool) (*unit, error) {
	pg := m.opts.Shard
	var total int64
	for _, w := range g.ws {
		total += numel(w.shape)
	}
	n := (total + int64(pg.World) - 1) / int64(pg.World)
	var u *unit
	err := func() error {
		s := torch.NewScope()
		defer s.Close()
		parts := make([]*torch.Tensor, 0, len(g.ws)+1)
		for _, w := range g.ws {
			parts = append(parts, (*w.t).Reshape(-1))
		}
		if pad := n*int64(pg.World) - total; pad > 0 {
			parts = append(parts, torch.Zeros(m.opts.DType, m.opts.Device, pad))
		}
		mine := torch.Cat(parts, 0).Narrow(0, int64(pg.Rank)*n, n)
		if trainable {
			mine = mine.To(torch.Float32)
		}
		mine = mine.Clone()
		if trainable {
			mine.SetRequiresGrad(true)
		}
		if err := mine.Err(); err != nil {
			return err
		}
		s.Keep(mine)
		torch.Keep(mine)
		u = &unit{name: g.name, shard: mine, numel: total, decay: g.decay}
		return nil
	}()
	for _, w := range g.ws {
		(*w.t).Free()
		*w.t = nil
	}
	if err != nil {
		return nil, fmt.Errorf("decoder: sharding %s: %w", g.name, err)
	}
	return u, nil
}

// shardAll shards base weights that were loaded or initialised whole.
func (m *Model) shardAll(trainable bool) error {
	for _, g := range m.unitWeights() {
		u, err := m.shardUnit(g, trainable)
		if err != nil {
			return err
		}
		m.units = append(m.units, u)
	}
	return nil
}

// unitGroup is a unit's name, tensors (in the order of weights()) and weight decay.
type unitGroup struct {
	name  string
	ws    []weight
	decay bool
}

// unitWeights groups weights() into units: the embedding; each layer's matrices, then its norms and biases; the
// final norm; the head (untied).
func (m *Model) unitWeights() []unitGroup {
	ws := m.weights()
	gs := []unitGroup{{"model.embed_tokens", ws[:1], true}}
	for i, l := range m.layers {
		mat, vec := splitDecay(m.layerWeights(i, l))
		p := fmt.Sprintf("model.layers.%d", i)
		gs = append(gs, unitGroup{p + ".matrices", mat, true}, unitGroup{p + ".vectors", vec, false})
	}
	rest := ws[len(ws)-1:]
	if !m.Config.TieWordEmbeddings {
		rest = ws[len(ws)-2:]
	}
	gs = append(gs, unitGroup{"model.norm", rest[:1], false})
	if len(rest) > 1 {
		gs = append(gs, unitGroup{"lm_head", rest[1:], true})
	}
	return gs
}

// splitDecay splits weights into those with weight decay and the others (optim.DecayByName), keeping their order.
func splitDecay(ws []weight) (decay, other []weight) {
	for _, w := range ws {
		if optim.DecayByName(w.name, w.shape) {
			decay = append(decay, w)
		} else {
			other = append(other, w)
		}
	}
	return decay, other
}

// gather returns the whole tensors of unit u, in the current scope, one per weight of ws (the unit's layout), in
// the model's dtype; differentiable when the unit is trainable and grad is on.
func (m *Model) gather(u *unit, ws []weight) []*torch.Tensor {
	src := u.shard
	if src.DType() != m.opts.DType {
		src = src.To(m.opts.DType)
	}
	full := m.opts.Shard.GatherShard(src, u.numel)
	out := make([]*torch.Tensor, len(ws))
	off := int64(0)
	for i, w := range ws {
		n := numel(w.shape)
		out[i] = full.Narrow(0, off, n).View(w.shape...)
		off += n
	}
	return out
}

// layerAt returns layer i with its base weights: the layer itself, or, sharded, a copy holding the gathered
// tensors (and the same LoRA weights).
func (m *Model) layerAt(i int) *layer {
	l := m.layers[i]
	if !m.sharded() {
		return l
	}
	c := *l
	for _, p := range []**linear{&c.q, &c.k, &c.v, &c.o, &c.gate, &c.up, &c.down} {
		lc := **p
		*p = &lc
	}
	mat, vec := splitDecay(m.layerWeights(i, &c))
	for k, ws := range [][]weight{mat, vec} {
		for j, t := range m.gather(m.units[1+2*i+k], ws) {
			*ws[j].t = t
		}
	}
	return &c
}

// embedding, finalNorm and head return those base weights (gathered when sharded).
func (m *Model) embedding() *torch.Tensor {
	if !m.sharded() {
		return m.embed
	}
	return m.gather(m.units[0], m.weights()[:1])[0]
}

func (m *Model) finalNorm() *torch.Tensor {
	if !m.sharded() {
		return m.norm
	}
	return m.gather(m.units[1+2*len(m.layers)], []weight{{shape: []int64{int64(m.Config.HiddenSize)}}})[0]
}

func (m *Model) head() *torch.Tensor {
	if !m.sharded() {
		return m.lmHead
	}
	if m.Config.TieWordEmbeddings {
		return m.embedding()
	}
	V, C := int64(m.Config.VocabSize), int64(m.Config.HiddenSize)
	return m.gather(m.units[2+2*len(m.layers)], []weight{{shape: []int64{V, C}}})[0]
}

// BaseBytes returns the bytes of base weights this process holds (float32 master slices in sharded full
// fine-tuning), and of the whole base model in its dtype.
func (m *Model) BaseBytes() (held, whole int64) {
	size := int64(m.opts.DType.Size())
	for _, w := range m.weights() {
		whole += numel(w.shape) * size
	}
	if !m.sharded() {
		return whole, whole
	}
	for _, u := range m.units {
		held += u.shard.Numel() * int64(u.shard.DType().Size())
	}
	return held, whole
}
