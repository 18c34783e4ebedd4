package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/torch"
)

// The collectives of data parallelism: every process calls each of these at the same point of the stage, in the
// same order (a process that skips one hangs the others until dist.timeout_seconds). They are no-ops with one
// process. Small values travel as float64 tensors on the training device (NCCL reduces only CUDA tensors) and are
// read back to the host, so a call returns only once every process has contributed.

// stopRequested agrees across processes on whether to stop now (any process got the signal).
func (r *stageRun) stopRequested() (bool, error) {
	local := (r.env.Stop != nil && r.env.Stop.Load()) || (r.env.StopAfter > 0 && r.stepsHere >= r.env.StopAfter)
	if r.env.PG == nil {
		return local, nil
	}
	v := 0.0
	if local {
		v = 1
	}
	x, err := r.allReduce([]float64{v}, torch.ReduceOpMax)
	if err != nil {
		return false, err
	}
	return x[0] != 0, nil
}

// allSum sums small values across processes (float64, exact for counts below 2^53).
func (r *stageRun) allSum(v []float64) ([]float64, error) { return r.allReduce(v, torch.ReduceOpSum) }

// allReduce reduces small values across the processes of the stage.
func (r *stageRun) allReduce(v []float64, op torch.ReduceOp) ([]float64, error) {
	return reduceSmall(r.env, v, op)
}

// reduceSmall reduces small values across processes, on the training device (NCCL reduces only CUDA tensors). The
// result is read back to the host, so the call returns only once every process has contributed.
func reduceSmall(env Env, v []float64, op torch.ReduceOp) ([]float64, error) {
	if env.PG == nil {
		return v, nil
	}
	s := torch.NewScope()
	defer s.Close()
	t := torch.FromFloat64s(v).ToDevice(env.Device)
	if err := t.Err(); err != nil {
		return nil, err
	}
	if err := env.PG.AllReduce([]*torch.Tensor{t}, op); err != nil {
		return nil, err
	}
	return t.Float64s()
}

// bucketBytes bounds one gradient all-reduce: large enough to amortise latency, small enough not to double
// memory for full fine-tuning.
const bucketBytes = 64 << 20

// allReduceGrads sums gradients across processes in buckets.
func (r *stageRun) allReduceGrads(params []*torch.Tensor) error {
	s := torch.NewScope()
	defer s.Close()
	var bucket []*torch.Tensor
	var size int64
	flush := func() error {
		if len(bucket) == 0 {
			return nil
		}
		err := r.env.PG.AllReduce(bucket, torch.ReduceOpSum)
		bucket, size = bucket[:0], 0
		return err
	}
	for _, p := range params {
		g := p.Grad()
		if g == nil {
			continue
		}
		if err := g.Err(); err != nil {
			return err
		}
		bucket = append(bucket, g)
		size += g.Numel() * int64(g.DType().Size())
		if size >= bucketBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// broadcastParams makes every process start from rank 0's trainable weights (the replicated ones).
func (r *stageRun) broadcastParams() error {
	if r.env.PG == nil {
		return nil
	}
	replicated, _ := r.splitSharded(r.opt.Tensors()) // each process's slice of a sharded parameter is its own
	return r.env.PG.Broadcast(replicated, 0)
}

// agreeStop tells every process whether any process was asked to stop. It is a collective: every process calls it
// at the same point.
func agreeStop(env Env) (bool, error) {
	v := 0.0
	if env.stopped() {
		v = 1
	}
	x, err := reduceSmall(env, []float64{v}, torch.ReduceOpMax)
	if err != nil {
		return false, err
	}
	return x[0] != 0, nil
}

// waitRank0 returns once every process has reached it; the processes call it after rank 0's own work (what), so
// that work is complete for all of them afterwards.
func waitRank0(env Env, what string) error {
	if env.PG == nil {
		return nil
	}
	if err := env.PG.Barrier(); err != nil {
		return fmt.Errorf("waiting for %s: %w (if that work legitimately takes longer, raise dist.timeout_seconds)", what, err)
	}
	return nil
}

// stateBytes is the room for one loader state in the all-gather that collects them for a checkpoint.
const stateBytes = 1024

// gatherLoaderStates returns the state of every data stream (every process's loaders, in stream order).
func (r *stageRun) gatherLoaderStates() ([]loader.State, error) {
	var mine []loader.State
	for _, ld := range r.lds {
		mine = append(mine, ld.State())
	}
	if r.env.PG == nil {
		return mine, nil
	}
	buf := make([]byte, stateBytes*len(mine))
	for k, st := range mine {
		b, err := json.Marshal(st)
		if err != nil {
			return nil, err
		}
		if len(b) > stateBytes {
			return nil, fmt.Errorf("loader state of %d bytes exceeds %d", len(b), stateBytes)
		}
		copy(buf[k*stateBytes:], b)
	}
	t := torch.FromBytes(buf, torch.Uint8, []int64{int64(len(buf))}, torch.CPU)
	defer t.Free()
	if r.env.Device.IsCUDA() { // NCCL gathers device tensors
		d := t.ToDevice(r.env.Device)
		defer d.Free()
		t = d
	}
	all, err := r.env.PG.AllGather(t)
	if err != nil {
		return nil, err
	}
	var states []loader.State
	for i, a := range all {
		raw, err := a.Bytes()
		a.Free()
		if err != nil {
			return nil, err
		}
		for k := 0; k < len(raw)/stateBytes; k++ {
			var st loader.State
			if err := json.Unmarshal(bytes.TrimRight(raw[k*stateBytes:(k+1)*stateBytes], "\x00"), &st); err != nil {
				return nil, fmt.Errorf("loader state %d of rank %d: %w", k, i, err)
			}
			states = append(states, st)
		}
	}
	return states, nil
}

// gatherWhole returns the whole tensor (whole elements) of which t is this process's slice, on the host.
func (r *stageRun) gatherWhole(t *torch.Tensor, whole int64) (*torch.Tensor, error) {
	var out *torch.Tensor
	torch.NoGrad(func() { out = r.env.PG.GatherShard(t.Detach(), whole).ToDevice(torch.CPU) })
	return out, out.Err()
}

// sliceOf returns this process's slice of whole (a flat tensor), as the shard of n elements that a sharded
// parameter holds: whole padded with zeros to n x world elements, and the rank's n.
func (r *stageRun) sliceOf(whole *torch.Tensor, n int64) *torch.Tensor {
	flat := whole.Reshape(-1)
	if pad := n*int64(r.world) - flat.Numel(); pad > 0 {
		flat = torch.Cat([]*torch.Tensor{flat, torch.Zeros(flat.DType(), flat.Device(), pad)}, 0)
	}
	return flat.Narrow(0, int64(r.rank)*n, n)
}

// gradNorm returns the norm of the gradients of all processes' parameters: the replicated ones (already summed
// over the processes, the same on each) and the sharded slices (each process has its part of the whole), and,
// with clip > 0, scales every gradient so that the norm is at most clip (as torch.nn.utils.clip_grad_norm_).
func (r *stageRun) gradNorm(replicated, sharded []*torch.Tensor, clip float64) (float64, error) {
	nr, err := torch.GradNorm(replicated)
	if err != nil {
		return 0, err
	}
	ns, err := torch.GradNorm(sharded)
	if err != nil {
		return 0, err
	}
	sq, err := r.allSum([]float64{ns * ns})
	if err != nil {
		return 0, err
	}
	norm := math.Sqrt(nr*nr + sq[0])
	if coef := clip / (norm + 1e-6); clip > 0 && coef < 1 {
		for _, p := range append(append([]*torch.Tensor{}, replicated...), sharded...) {
			if g := p.Grad(); g != nil {
				if err := g.MulScalarInPlace(coef); err != nil {
					return 0, err
				}
				g.Free()
			}
		}
	}
	return norm, nil
}
