package torch

/*
#include <stdlib.h>
#include "msmtorch.h"
*/
import "C"

import (
	"fmt"
	"math"
	"time"
)

// ProcessGroup is a c10d process group: a TCPStore rendezvous plus Gloo (CPU) or NCCL (CUDA) collectives.
// torch/dist builds one from launcher variables.
type ProcessGroup struct {
	pg          C.msm_pg
	Rank, World int
	Backend     string
}

// NewProcessGroup joins the group: rank 0 serves the store on host:port, the others connect to it. It blocks
// until all world ranks have joined or timeout passes.
func NewProcessGroup(backend, host string, port, rank, world int, timeout time.Duration) (*ProcessGroup, error) {
	if rank < 0 || rank >= world {
		return nil, fmt.Errorf("torch: dist: rank %d outside world size %d", rank, world)
	}
	cb, f1 := cstr(backend)
	defer f1()
	ch, f2 := cstr(host)
	defer f2()
	var pg C.msm_pg
	if err := check("dist_init", C.msm_pg_new(cb, ch, C.int(port), C.int(rank), C.int(world), C.int(timeout.Milliseconds()), &pg)); err != nil {
		return nil, err
	}
	return &ProcessGroup{pg: pg, Rank: rank, World: world, Backend: backend}, nil
}

// Close leaves the group.
func (p *ProcessGroup) Close() {
	if p != nil && p.pg != 0 {
		C.msm_pg_free(p.pg)
		p.pg = 0
	}
}

// ReduceOp selects how AllReduce combines values.
type ReduceOp int

// Reduce ops.
const (
	ReduceOpSum ReduceOp = iota
	ReduceOpAvg
	ReduceOpMax
	ReduceOpMin
)

// AllReduce reduces ts in place across ranks; the tensors travel as one flattened buffer (a bucket).
func (p *ProcessGroup) AllReduce(ts []*Tensor, op ReduceOp) error {
	if len(ts) == 0 {
		return nil
	}
	hs, err := handles(ts, make([]C.msm_tensor, 0, len(ts)))
	if err != nil {
		return err
	}
	return check("all_reduce", C.msm_pg_allreduce(p.pg, &hs[0], C.int(len(hs)), C.int(op)))
}

// Broadcast copies root's ts to every rank, in place.
func (p *ProcessGroup) Broadcast(ts []*Tensor, root int) error {
	if len(ts) == 0 {
		return nil
	}
	hs, err := handles(ts, make([]C.msm_tensor, 0, len(ts)))
	if err != nil {
		return err
	}
	return check("broadcast", C.msm_pg_broadcast(p.pg, &hs[0], C.int(len(hs)), C.int(root)))
}

// AllGather returns every rank's t, in rank order.
func (p *ProcessGroup) AllGather(t *Tensor) ([]*Tensor, error) {
	if t.err != nil {
		return nil, t.err
	}
	out := make([]C.msm_tensor, p.World)
	if err := check("all_gather", C.msm_pg_allgather(p.pg, t.h, &out[0], C.int(p.World))); err != nil {
		return nil, err
	}
	res := make([]*Tensor, p.World)
	for i, h := range out {
		res[i] = newTensor(h)
	}
	return res, nil
}

// GatherShard all-gathers every rank's 1-D shard (all of one length) and returns the first numel elements of the
// whole, in rank order: the flat tensor a sharded weight was cut from. When grad is on and the shard requires
// grad, the result is differentiable: backward sums its gradient over the ranks and gives each shard its part
// (a reduce-scatter; Gloo all-reduces and keeps the slice). Every rank must call it at the same point, and its
// backward collectives then run in the order the autograd engine picks, which for nodes that are ready together
// follows libtorch's per-OS-thread sequence numbers: build the graph from one locked OS thread
// (runtime.LockOSThread) on every rank, or ranks may order them differently and deadlock.
func (p *ProcessGroup) GatherShard(shard *Tensor, numel int64) *Tensor {
	if shard.err != nil {
		return shard
	}
	var out C.msm_tensor
	if err := check("gather_shard", C.msm_pg_gather_shard(p.pg, shard.h, C.int64_t(numel), flags(), &out)); err != nil {
		return Errorf("%w", err)
	}
	return newTensor(out)
}

// Barrier returns once every rank has reached it, within the group's timeout. It blocks the calling thread on every
// backend (it goes through the group's TCPStore, not a collective: an NCCL collective's wait returns before the
// other ranks arrive), so files one rank wrote before its Barrier are complete for every rank after theirs.
// Every rank must call it at the same point, as with a collective. On a timeout the error names the ranks that did
// not arrive; the group is then out of step and should be closed.
func (p *ProcessGroup) Barrier() error { return p.BarrierTimeout(0) }

// BarrierTimeout is Barrier with its own timeout (0: the group's).
func (p *ProcessGroup) BarrierTimeout(timeout time.Duration) error {
	ms := timeout.Milliseconds()
	if timeout > 0 && ms == 0 {
		ms = 1
	}
	return check("barrier", C.msm_pg_barrier(p.pg, C.int(min(ms, math.MaxInt32))))
}
