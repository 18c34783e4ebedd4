package torch

/*
#include "msmtorch.h"
*/
import "C"

import "fmt"

// AdamWParams are the hyperparameters of one AdamW step.
type AdamWParams struct {
	LR, Beta1, Beta2, Eps float64
	Step                  int64 // 1-based count of this update, for bias correction
	Fused                 bool  // use the fused CUDA kernel where the build has it
}

// AdamWStep updates params in place from their grads with decoupled weight decay (one decay per parameter), the
// first and second moments expAvg and expAvgSq, as torch.optim.AdamW does. Parameters without a grad are skipped.
func AdamWStep(params, expAvg, expAvgSq []*Tensor, weightDecay []float64, p AdamWParams) error {
	n := len(params)
	if len(expAvg) != n || len(expAvgSq) != n || len(weightDecay) != n {
		return fmt.Errorf("torch: adamw: %d params, %d exp_avg, %d exp_avg_sq, %d decays", n, len(expAvg), len(expAvgSq), len(weightDecay))
	}
	if n == 0 {
		return nil
	}
	ps, err := handles(params, make([]C.msm_tensor, 0, n))
	if err != nil {
		return err
	}
	ms, err := handles(expAvg, make([]C.msm_tensor, 0, n))
	if err != nil {
		return err
	}
	vs, err := handles(expAvgSq, make([]C.msm_tensor, 0, n))
	if err != nil {
		return err
	}
	fused := 0
	if p.Fused {
		fused = 1
	}
	return check("adamw", C.msm_adamw(&ps[0], &ms[0], &vs[0], (*C.double)(&weightDecay[0]), C.int(n), C.int64_t(p.Step),
		C.double(p.LR), C.double(p.Beta1), C.double(p.Beta2), C.double(p.Eps), C.int(fused)))
}

// GradNorm returns the global L2 norm of the params' gradients.
func GradNorm(params []*Tensor) (float64, error) {
	if len(params) == 0 {
		return 0, nil
	}
	ps, err := handles(params, make([]C.msm_tensor, 0, len(params)))
	if err != nil {
		return 0, err
	}
	hostReads.Add(1)
	var out C.double
	err = check("grad_norm", C.msm_grad_norm(&ps[0], C.int(len(ps)), &out))
	return float64(out), err
}

// ClipGradNorm scales the params' gradients so that their global L2 norm is at most maxNorm (as
// torch.nn.utils.clip_grad_norm_) and returns the norm before clipping.
func ClipGradNorm(params []*Tensor, maxNorm float64) (float64, error) {
	if len(params) == 0 {
		return 0, nil
	}
	ps, err := handles(params, make([]C.msm_tensor, 0, len(params)))
	if err != nil {
		return 0, err
	}
	hostReads.Add(1)
	var out C.double
	err = check("clip_grad_norm", C.msm_clip_grad_norm(&ps[0], C.int(len(ps)), C.double(maxNorm), &out))
	return float64(out), err
}
