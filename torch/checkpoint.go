package torch

/*
#include <stdint.h>
#include "msmtorch.h"
typedef char *(*msm_ckpt_fn)(uint64_t, msm_tensor *, int, msm_tensor *, int, int *);
void msm_set_checkpoint_callback(msm_ckpt_fn fn);
char *msmGoCheckpoint(uint64_t id, msm_tensor *in, int nin, msm_tensor *out, int maxout, int *nout);
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// Activation checkpointing: Checkpoint(f, inputs) runs f without keeping its intermediate tensors for backward;
// backward runs f again (with grad on) and backpropagates through that fresh graph. f must compute the same
// function each time: no randomness unless it is seeded from its inputs.

var ckpt struct {
	sync.Mutex
	next uint64
	fns  map[uint64]func([]*Tensor) ([]*Tensor, error)
}

func init() {
	ckpt.fns = map[uint64]func([]*Tensor) ([]*Tensor, error){}
	C.msm_set_checkpoint_callback(C.msm_ckpt_fn(C.msmGoCheckpoint))
}

// CheckpointFn is a block to checkpoint; it can hold its own parameters (a transformer layer).
type CheckpointFn struct {
	id uint64
}

// NewCheckpointFn registers f. Register once per block (per layer) and reuse; Release unregisters.
func NewCheckpointFn(f func(in []*Tensor) ([]*Tensor, error)) *CheckpointFn {
	ckpt.Lock()
	defer ckpt.Unlock()
	ckpt.next++
	ckpt.fns[ckpt.next] = f
	return &CheckpointFn{id: ckpt.next}
}

// Release unregisters the block; tensors whose backward still needs it must be gone first.
func (c *CheckpointFn) Release() {
	ckpt.Lock()
	delete(ckpt.fns, c.id)
	ckpt.Unlock()
}

// Call runs the block on inputs. When grad is enabled, the outputs' backward recomputes the block.
func (c *CheckpointFn) Call(inputs ...*Tensor) ([]*Tensor, error) {
	var buf [8]C.msm_tensor
	hs, err := handles(inputs, buf[:0])
	if err != nil {
		return nil, err
	}
	var out [16]C.msm_tensor
	var nout C.int
	var pin *C.msm_tensor
	if len(hs) > 0 {
		pin = &hs[0]
	}
	if err := check("checkpoint", C.msm_checkpoint(C.uint64_t(c.id), pin, C.int(len(hs)), flags(), &out[0], 16, &nout)); err != nil {
		return nil, err
	}
	res := make([]*Tensor, int(nout))
	for i := range res {
		res[i] = newTensor(out[i])
	}
	return res, nil
}

//export msmGoCheckpoint
func msmGoCheckpoint(id C.uint64_t, in *C.msm_tensor, nin C.int, out *C.msm_tensor, maxout C.int, nout *C.int) *C.char {
	ckpt.Lock()
	f := ckpt.fns[uint64(id)]
	ckpt.Unlock()
	if f == nil {
		return C.CString(fmt.Sprintf("checkpoint: block %d is not registered", uint64(id)))
	}
	ins := make([]*Tensor, int(nin))
	for i, h := range unsafe.Slice(in, int(nin)) {
		ins[i] = &Tensor{h: h, borrowed: true}
	}
	s := NewScope()
	defer s.Close()
	outs, err := f(ins)
	if err == nil {
		for _, o := range outs {
			if err = o.Err(); err != nil {
				break
			}
		}
	}
	if err != nil {
		return C.CString(err.Error())
	}
	if len(outs) > int(maxout) {
		return C.CString(fmt.Sprintf("checkpoint: block returned %d tensors, at most %d", len(outs), int(maxout)))
	}
	dst := unsafe.Slice(out, int(maxout))
	for i, o := range outs {
		if e := check("checkpoint", C.msm_shallow_clone(o.h, &dst[i])); e != nil {
			for _, h := range dst[:i] {
				C.msm_free(h)
			}
			return C.CString(e.Error())
		}
	}
	*nout = C.int(len(outs))
	return nil
}
