package decoder

import (
	"errors"
	"fmt"

	"github.com/msmtrain/msmtrain/torch"
)

// Sharded base weights (Options.Shard, msmtrain's dist.shard = "full"): the semantics of FSDP / ZeRO-3 for the
// frozen base of a LoRA model. The base weights are grouped in units (the embedding, each layer, the final norm,
// the head when it is not tied); each unit's tensors are flattened into one vector, padded to a multiple of the
// group's size, and each rank keeps its 1/world slice. A unit is all-gathered just before it is used and its
// whole tensors live only in the scope of that use: a layer's inside its (checkpointed) block, gathered again when
// backward recomputes the block; the head once per loss (kept, as an input of the loss chunks, until their
// backward). Every rank gathers the same units in the same order, whatever its data: a forward pass makes the
// same collectives on every rank. The LoRA weights are whole on every rank, as without sharding.

// unit is a group of base weights stored as one flat shard.
type unit struct {
	name  string
	shard *torch.Tensor // this rank's slice of the flattened, padded unit (kept out of every scope)
	numel int64         // elements of the whole unit
}

// ErrShardedBase is returned for what needs the whole base weights in one process, which a sharded model lacks.
var ErrShardedBase = errors.New("decoder: the base weights are sharded over the processes (dist.shard = \"full\")")

// checkShard refuses sharding where it does not apply: full fine-tuning (not sharded yet), or no activation
// checkpointing (the gathered weights would be kept for backward).
func (o Options) checkShard(lora bool) error {
	if o.Shard != nil && (!lora || !o.Checkpoint) {
		return errors.New("decoder: sharded base weights need a LoRA adapter and activation checkpointing " +
			"(full fine-tuning is not sharded yet; without checkpointing the gathered weights would be kept for backward)")
	}
	return nil
}

// sharded reports whether the base weights are sharded.
func (m *Model) sharded() bool { return m.opts.Shard != nil }

// shardUnit replaces the whole tensors ws (loaded or initialised, all of the model's dtype) by this rank's slice
// of their concatenation, and frees them.
func (m *Model) shardUnit(name string, ws []weight) (*unit, error) {
	pg := m.opts.Shard
	var total int64
	for _, w := range ws {
		total += numel(w.shape)
	}
	n := (total + int64(pg.World) - 1) / int64(pg.World)
	var u *unit
	err := func() error {
		s := torch.NewScope()
		defer s.Close()
		parts := make([]*torch.Tensor, 0, len(ws)+1)
		for _, w := range ws {
			parts = append(parts, (*w.t).Reshape(-1))
		}
		if pad := n*int64(pg.World) - total; pad > 0 {
			parts = append(parts, torch.Zeros(m.opts.DType, m.opts.Device, pad))
		}
		flat := torch.Cat(parts, 0)
		mine := flat.Narrow(0, int64(pg.Rank)*n, n).Clone()
		if err := mine.Err(); err != nil {
			return err
		}
		s.Keep(mine)
		torch.Keep(mine)
		u = &unit{name: name, shard: mine, numel: total}
		return nil
	}()
	for _, w := range ws {
		(*w.t).Free()
		*w.t = nil
	}
	if err != nil {
		return nil, fmt.Errorf("decoder: sharding %s: %w", name, err)
	}
	return u, nil
}

// shardAll shards base weights that were loaded or initialised whole.
func (m *Model) shardAll() error {
	for _, g := range m.unitWeights() {
		u, err := m.shardUnit(g.name, g.ws)
		if err != nil {
			return err
		}
		m.units = append(m.units, u)
	}
	return nil
}

// unitGroup is a unit's name and tensors, in the order of weights().
type unitGroup struct {
	name string
	ws   []weight
}

// unitWeights groups weights() into units: the embedding, each layer, the final norm, the head (untied).
func (m *Model) unitWeights() []unitGroup {
	ws := m.weights()
	gs := []unitGroup{{"model.embed_tokens", ws[:1]}}
	rest := ws[1:]
	for i, l := range m.layers {
		n := len(m.layerWeights(i, l))
		gs = append(gs, unitGroup{fmt.Sprintf("model.layers.%d", i), rest[:n]})
		rest = rest[n:]
	}
	gs = append(gs, unitGroup{"model.norm", rest[:1]})
	if len(rest) > 1 {
		gs = append(gs, unitGroup{"lm_head", rest[1:]})
	}
	return gs
}

// gather returns the whole tensors of unit u, in the current scope, one per weight of ws (the unit's layout).
func (m *Model) gather(u *unit, ws []weight) []*torch.Tensor {
	full := m.opts.Shard.GatherShard(u.shard, u.numel)
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
	ws := m.layerWeights(i, &c)
	for k, t := range m.gather(m.units[1+i], ws) {
		*ws[k].t = t
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
	return m.gather(m.units[1+len(m.layers)], []weight{{shape: []int64{int64(m.Config.HiddenSize)}}})[0]
}

func (m *Model) head() *torch.Tensor {
	if !m.sharded() {
		return m.lmHead
	}
	if m.Config.TieWordEmbeddings {
		return m.embedding()
	}
	V, C := int64(m.Config.VocabSize), int64(m.Config.HiddenSize)
	return m.gather(m.units[2+len(m.layers)], []weight{{shape: []int64{V, C}}})[0]
}

// BaseBytes returns the bytes of base weights this process holds, and of the whole base model.
func (m *Model) BaseBytes() (held, whole int64) {
	size := int64(m.opts.DType.Size())
	for _, w := range m.weights() {
		whole += numel(w.shape) * size
	}
	if !m.sharded() {
		return whole, whole
	}
	for _, u := range m.units {
		held += u.shard.Numel() * size
	}
	return held, whole
}
