package torch

/*
#include "msmtorch.h"
*/
import "C"

import (
	"fmt"
)

// Version is the libtorch version the shim was built against.
func Version() string { return C.GoString(C.msm_version()) }

// BLASCore is OpenBLAS's kernel set for this CPU ("Haswell", "SkylakeX", ...), "" if libtorch uses another BLAS.
func BLASCore() string { return C.GoString(C.msm_blas_core()) }

// CUDABuilt reports whether the shim was built against a CUDA libtorch.
func CUDABuilt() bool { return C.msm_cuda_built() != 0 }

// CUDADeviceCount is the number of CUDA devices visible (0 on a CPU build).
func CUDADeviceCount() int { return int(C.msm_cuda_device_count()) }

// CUDADeviceName describes CUDA device i (name, SMs, memory).
func CUDADeviceName(i int) (string, error) {
	var buf [256]C.char
	if err := check("cuda_device_name", C.msm_cuda_device_name(C.int(i), &buf[0], C.int(len(buf)))); err != nil {
		return "", err
	}
	return C.GoString(&buf[0]), nil
}

// CUDAMemory reports the caching allocator's bytes on device i.
type CUDAMemory struct{ Allocated, Peak, Reserved, Total int64 }

// CUDAMemoryInfo returns device i's memory statistics.
func CUDAMemoryInfo(i int) (CUDAMemory, error) {
	var a, p, r, t C.int64_t
	if err := check("cuda_mem_info", C.msm_cuda_mem_info(C.int(i), &a, &p, &r, &t)); err != nil {
		return CUDAMemory{}, err
	}
	return CUDAMemory{int64(a), int64(p), int64(r), int64(t)}, nil
}

// CUDAResetPeak resets device i's peak memory statistic.
func CUDAResetPeak(i int) error { return check("cuda_reset_peak", C.msm_cuda_reset_peak(C.int(i))) }

// Synchronize waits for all work queued on dev (no-op on the CPU).
func Synchronize(dev Device) error {
	if !dev.IsCUDA() {
		return nil
	}
	return check("cuda_synchronize", C.msm_cuda_synchronize(C.int(dev.Index)))
}

// SetDevice makes dev the current CUDA device (what NCCL and kernels without an explicit device use); a no-op for
// the CPU. Each process of a data-parallel job calls it with its local device before joining the group.
func SetDevice(dev Device) error {
	if !dev.IsCUDA() {
		return nil
	}
	return check("cuda_set_device", C.msm_cuda_set_device(C.int(dev.Index)))
}

// SetNumThreads sets libtorch's intra-op thread count (n <= 0 leaves it).
func SetNumThreads(n int) { C.msm_set_num_threads(C.int(n)) }

// NumThreads returns libtorch's intra-op thread count.
func NumThreads() int { return int(C.msm_num_threads()) }

// Devices describes what this build sees, for --version.
func Devices() []string {
	d := []string{"cpu"}
	for i := 0; i < CUDADeviceCount(); i++ {
		name, err := CUDADeviceName(i)
		if err != nil {
			name = err.Error()
		}
		d = append(d, fmt.Sprintf("cuda:%d %s", i, name))
	}
	return d
}

// ---- random numbers ----

// Generator is a seeded random number generator on a device, independent of the default one.
type Generator struct {
	g   C.msm_gen
	dev Device
}

// NewGenerator returns a generator on dev seeded with seed.
func NewGenerator(seed uint64, dev Device) (*Generator, error) {
	var g C.msm_gen
	if err := check("generator", C.msm_gen_new(C.uint64_t(seed), C.int(dev.Type), C.int(dev.Index), &g)); err != nil {
		return nil, err
	}
	return &Generator{g, dev}, nil
}

// Free releases the generator.
func (g *Generator) Free() {
	if g != nil && g.g != 0 {
		C.msm_gen_free(g.g)
		g.g = 0
	}
}

func (g *Generator) handle() C.msm_gen {
	if g == nil {
		return 0
	}
	return g.g
}

// State returns the generator's state as bytes (nil g: the default CPU generator).
func (g *Generator) State() ([]byte, error) {
	var h C.msm_tensor
	if err := check("rng_state", C.msm_gen_get_state(g.handle(), &h)); err != nil {
		return nil, err
	}
	t := newTensor(h)
	defer t.Free()
	return t.Bytes()
}

// SetState restores a state from State (nil g: the default CPU generator).
func (g *Generator) SetState(b []byte) error {
	t := FromBytes(b, Uint8, []int64{int64(len(b))}, CPU)
	defer t.Free()
	if t.err != nil {
		return t.err
	}
	return check("set_rng_state", C.msm_gen_set_state(g.handle(), t.h))
}

// CUDARNGState returns the default CUDA generator's state of device i.
func CUDARNGState(i int) ([]byte, error) {
	var h C.msm_tensor
	if err := check("cuda_rng_state", C.msm_cuda_get_rng_state(C.int(i), &h)); err != nil {
		return nil, err
	}
	t := newTensor(h)
	defer t.Free()
	return t.Bytes()
}

// SetCUDARNGState restores device i's default CUDA generator.
func SetCUDARNGState(i int, b []byte) error {
	t := FromBytes(b, Uint8, []int64{int64(len(b))}, CPU)
	defer t.Free()
	if t.err != nil {
		return t.err
	}
	return check("set_cuda_rng_state", C.msm_cuda_set_rng_state(C.int(i), t.h))
}

// ManualSeed seeds the default CPU and CUDA generators.
func ManualSeed(seed uint64) error { return check("manual_seed", C.msm_manual_seed(C.uint64_t(seed))) }

func random(kind int, a, b float64, g *Generator, dtype DType, dev Device, shape []int64) *Tensor {
	sp, nd := shapeC(shape)
	var h C.msm_tensor
	if err := check("rand", C.msm_rand(C.int(kind), C.double(a), C.double(b), g.handle(), C.int(dtype), sp, nd,
		C.int(dev.Type), C.int(dev.Index), &h)); err != nil {
		return errTensor(err)
	}
	return newTensor(h)
}

// Randn samples a normal(mean, std) tensor from g (nil: the default generator).
func Randn(g *Generator, mean, std float64, dtype DType, dev Device, shape ...int64) *Tensor {
	return random(0, mean, std, g, dtype, dev, shape)
}

// Uniform samples a uniform [lo, hi) tensor from g (nil: the default generator).
func Uniform(g *Generator, lo, hi float64, dtype DType, dev Device, shape ...int64) *Tensor {
	return random(1, lo, hi, g, dtype, dev, shape)
}

// Dropout zeroes each element with probability p using g and scales the rest by 1/(1-p).
func Dropout(x *Tensor, p float64, g *Generator) *Tensor {
	if x.err != nil {
		return x
	}
	var h C.msm_tensor
	if err := check("dropout", C.msm_dropout(x.h, C.double(p), g.handle(), flags(), &h)); err != nil {
		return errTensor(err)
	}
	return newTensor(h)
}
