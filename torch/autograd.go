package torch

/*
#include "msmtorch.h"
*/
import "C"

// Backward computes gradients of t (a scalar, or with grad of t's shape) into the .grad of the leaves that
// require grad, accumulating like PyTorch.
func (t *Tensor) Backward(grad *Tensor) error {
	if t.err != nil {
		return t.err
	}
	if t.h == 0 {
		return errFreed
	}
	var g C.msm_tensor
	if grad != nil {
		if grad.err != nil {
			return grad.err
		}
		g = grad.h
	}
	return check("backward", C.msm_backward(t.h, g))
}

// Grad returns a new handle to t's accumulated gradient, or nil when it has none.
func (t *Tensor) Grad() *Tensor {
	if t.err != nil {
		return t
	}
	var g C.msm_tensor
	if err := check("grad", C.msm_grad(t.h, &g)); err != nil {
		return errTensor(err)
	}
	if g == 0 {
		return nil
	}
	return newTensor(g)
}

// SetGrad replaces t's gradient; nil clears it (the zero_grad(set_to_none=True) of PyTorch).
func (t *Tensor) SetGrad(g *Tensor) error {
	if t.err != nil {
		return t.err
	}
	var h C.msm_tensor
	if g != nil {
		if g.err != nil {
			return g.err
		}
		h = g.h
	}
	return check("set_grad", C.msm_set_grad(t.h, h))
}

// SetRequiresGrad marks a leaf tensor as trainable (or not) and returns t.
func (t *Tensor) SetRequiresGrad(on bool) *Tensor {
	if t.err != nil {
		return t
	}
	o := 0
	if on {
		o = 1
	}
	if err := check("requires_grad", C.msm_set_requires_grad(t.h, C.int(o))); err != nil {
		return errTensor(err)
	}
	return t
}

// RequiresGrad reports whether t records gradients.
func (t *Tensor) RequiresGrad() bool { i, _ := t.Info(); return i.RequiresGrad }
