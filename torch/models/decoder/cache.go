package decoder

import (
	"fmt"

	"github.com/msmtrain/msmtrain/torch"
)

// Cache holds the keys and values of every layer for incremental decoding, preallocated for maxLen positions.
type Cache struct {
	k, v  []*torch.Tensor // per layer (B, KV, maxLen, D), after RoPE
	seg   *torch.Tensor   // (B, maxLen) segment ids of the cached positions
	n     int64           // positions filled
	size  int64           // maxLen
	batch int64
}

// NewCache allocates a cache for batch rows of up to maxLen positions, in the model's dtype and device.
func (m *Model) NewCache(batch, maxLen int) (*Cache, error) {
	c := m.Config
	B, S := int64(batch), int64(maxLen)
	if B <= 0 || S <= 0 {
		return nil, fmt.Errorf("decoder: cache of %d rows x %d positions", batch, maxLen)
	}
	kc := &Cache{size: S, batch: B}
	kc.seg = torch.Zeros(torch.Int64, m.opts.Device, B, S)
	torch.Keep(kc.seg)
	for range m.layers {
		k := torch.Zeros(m.opts.DType, m.opts.Device, B, int64(c.NumKVHeads), S, int64(c.HeadSize()))
		v := torch.Zeros(m.opts.DType, m.opts.Device, B, int64(c.NumKVHeads), S, int64(c.HeadSize()))
		torch.Keep(k, v)
		kc.k, kc.v = append(kc.k, k), append(kc.v, v)
		if err := v.Err(); err != nil {
			kc.Free()
			return nil, fmt.Errorf("decoder: cache: %w", err)
		}
		if err := k.Err(); err != nil {
			kc.Free()
			return nil, fmt.Errorf("decoder: cache: %w", err)
		}
	}
	if err := kc.seg.Err(); err != nil {
		kc.Free()
		return nil, err
	}
	return kc, nil
}

// Len is the number of positions cached.
func (c *Cache) Len() int { return int(c.n) }

// Reset empties the cache for reuse.
func (c *Cache) Reset() { c.n = 0 }

// Free releases the cache.
func (c *Cache) Free() {
	for i := range c.k {
		c.k[i].Free()
		c.v[i].Free()
	}
	c.seg.Free()
}

// ForwardCached runs ids (B, T) at positions pos (B, T) with segment ids seg (B, T) (0 marks left padding, which
// later tokens of another segment do not see) after the cached positions, appends their keys and
// values to the cache and returns the logits (B, T, V) in float32. It never records autograd history.
func (m *Model) ForwardCached(ids, pos, seg *torch.Tensor, c *Cache) *torch.Tensor {
	if T := ids.Size(1); ids.Size(0) != c.batch || c.n+T > c.size {
		return torch.Errorf("decoder: cached forward of %v with %d of %d positions used for %d rows", ids.Shape(), c.n, c.size, c.batch)
	}
	var logits *torch.Tensor
	torch.NoGrad(func() {
		s := torch.NewScope()
		defer s.Close()
		h := m.hidden(ids, pos, seg, c)                           // (B, T, C)
		logits = torch.Linear(h, m.head(), nil).To(torch.Float32) // (B, T, V)
		s.Keep(logits)
	})
	return logits
}

// appendSeg writes seg (B, T) after the cached positions and returns the segment ids of all of them (B, n+T).
func (c *Cache) appendSeg(seg *torch.Tensor) *torch.Tensor {
	if seg == nil {
		return torch.Errorf("decoder: cached forward needs segment ids")
	}
	T := seg.Size(1)
	if err := c.seg.Narrow(1, c.n, T).CopyFrom(seg); err != nil {
		return torch.Errorf("decoder: cache segment ids: %w", err)
	}
	return c.seg.Narrow(1, 0, c.n+T)
}

// append writes layer li's k, v (B, KV, T, D) after the cached positions and returns all of them (B, KV, n+T, D).
func (c *Cache) append(li int, k, v *torch.Tensor) (*torch.Tensor, *torch.Tensor) {
	T := k.Size(2)
	if err := c.k[li].Narrow(2, c.n, T).CopyFrom(k); err != nil {
		e := torch.Errorf("decoder: cache layer %d: %w", li, err)
		return e, e
	}
	if err := c.v[li].Narrow(2, c.n, T).CopyFrom(v); err != nil {
		e := torch.Errorf("decoder: cache layer %d: %w", li, err)
		return e, e
	}
	return c.k[li].Narrow(2, 0, c.n+T), c.v[li].Narrow(2, 0, c.n+T)
}
