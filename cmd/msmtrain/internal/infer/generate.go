package infer

import (
	"fmt"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// Greedy continues prompt with the most likely token at each step, using the KV cache, until a stop token or
// maxNew tokens. It returns the new tokens (without the stop token) and whether a stop token ended it.
func Greedy(m *decoder.Model, prompt []int, maxNew int, stop []int) ([]int, bool, error) {
	if len(prompt) == 0 {
		return nil, false, fmt.Errorf("infer: empty prompt")
	}
	if mp := m.Config.MaxPositionEmbeddings; mp > 0 && len(prompt)+maxNew > mp {
		return nil, false, fmt.Errorf("infer: a prompt of %d tokens and %d new tokens exceed the model's max_position_embeddings %d",
			len(prompt), maxNew, mp)
	}
	isStop := map[int]bool{}
	for _, s := range stop {
		isStop[s] = true
	}
	cache, err := m.NewCache(1, len(prompt)+maxNew)
	if err != nil {
		return nil, false, err
	}
	defer cache.Free()
	dev := m.Options().Device
	ids := make([]int64, len(prompt))
	pos := make([]int64, len(prompt))
	seg := make([]int64, len(prompt))
	for i, p := range prompt {
		ids[i], pos[i], seg[i] = int64(p), int64(i), 1
	}
	var out []int
	next := len(prompt)
	for len(out) < maxNew {
		s := torch.NewScope()
		n := int64(len(ids))
		logits := m.ForwardCached(torch.FromInt64s(ids, 1, n).ToDevice(dev), torch.FromInt64s(pos, 1, n).ToDevice(dev),
			torch.FromInt64s(seg, 1, n).ToDevice(dev), cache)
		tokT := logits.Narrow(1, n-1, 1).Argmax(-1, false)
		v, err := tokT.Int64s()
		s.Close()
		if err != nil {
			return out, false, err
		}
		tok := int(v[0])
		if isStop[tok] {
			return out, true, nil
		}
		out = append(out, tok)
		ids, pos, seg = []int64{int64(tok)}, []int64{int64(next)}, []int64{1}
		next++
	}
	return out, false, nil
}
