package torch

/*
#include "msmtorch.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// DType is a tensor element type.
type DType int

// The element types msmtrain uses; the values match the shim's codes.
const (
	Float32 DType = iota
	BFloat16
	Float16
	Int64
	Int32
	Bool
	Uint8
	Float64
)

var dtypeNames = [...]string{"float32", "bfloat16", "float16", "int64", "int32", "bool", "uint8", "float64"}
var dtypeSizes = [...]int{4, 2, 2, 8, 4, 1, 1, 8}

func (d DType) String() string {
	if d >= 0 && int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return "DType(" + strconv.Itoa(int(d)) + ")"
}

// Size is the number of bytes of one element.
func (d DType) Size() int { return dtypeSizes[d] }

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool { return d == Float32 || d == BFloat16 || d == Float16 || d == Float64 }

// ParseDType reads a dtype name as configs write it: float32/fp32/f32, bfloat16/bf16, float16/fp16/f16, ...
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "float32", "fp32", "f32", "float":
		return Float32, nil
	case "bfloat16", "bf16":
		return BFloat16, nil
	case "float16", "fp16", "f16", "half":
		return Float16, nil
	case "int64", "i64", "long":
		return Int64, nil
	case "int32", "i32", "int":
		return Int32, nil
	case "bool":
		return Bool, nil
	case "uint8", "u8":
		return Uint8, nil
	case "float64", "fp64", "f64", "double":
		return Float64, nil
	}
	return 0, fmt.Errorf("torch: unknown dtype %q (want float32, bfloat16, float16, int64, int32, bool, uint8 or float64)", s)
}

// DeviceType is cpu or cuda.
type DeviceType int

// Device types.
const (
	DeviceCPU DeviceType = iota
	DeviceCUDA
)

// Device is where a tensor lives.
type Device struct {
	Type  DeviceType
	Index int
}

// CPU is the host device.
var CPU = Device{}

// CUDA returns the CUDA device with the given index.
func CUDA(index int) Device { return Device{DeviceCUDA, index} }

func (d Device) String() string {
	if d.Type == DeviceCUDA {
		return "cuda:" + strconv.Itoa(d.Index)
	}
	return "cpu"
}

// IsCUDA reports whether d is a CUDA device.
func (d Device) IsCUDA() bool { return d.Type == DeviceCUDA }

// ParseDevice reads "cpu", "cuda" or "cuda:N". CUDA devices are checked against what the shim was built with and
// what it sees, so a typo or a CPU-only build fails here, with a hint, rather than at the first op.
func ParseDevice(s string) (Device, error) {
	switch {
	case s == "cpu":
		return CPU, nil
	case s == "cuda" || strings.HasPrefix(s, "cuda:"):
		idx := 0
		if s != "cuda" {
			n, err := strconv.Atoi(s[len("cuda:"):])
			if err != nil || n < 0 {
				return CPU, fmt.Errorf("torch: bad device %q (want cpu, cuda or cuda:N)", s)
			}
			idx = n
		}
		if !CUDABuilt() {
			return CPU, fmt.Errorf("torch: device %q requested, but libmsmtorch was built against a CPU-only libtorch %s; "+
				"rebuild the shim against a CUDA libtorch: make shim LIBTORCH=/path/to/libtorch (or PYTHON=python-with-cuda-torch)",
				s, Version())
		}
		if n := CUDADeviceCount(); idx >= n {
			return CPU, fmt.Errorf("torch: device %q requested, but %d CUDA device(s) are visible", s, n)
		}
		return CUDA(idx), nil
	}
	return CPU, fmt.Errorf("torch: unknown device %q (want cpu, cuda or cuda:N)", s)
}

// Tensor is a handle to a libtorch tensor, or an error that an op produced. The zero value is not usable.
type Tensor struct {
	h        C.msm_tensor
	err      error
	borrowed bool   // owned by the C++ side (checkpoint callbacks): Free does nothing
	scope    *Scope // the scope that frees it, if any
}

var live atomic.Int64

// LiveTensors returns the number of tensor handles created and not yet freed.
func LiveTensors() int64 { return live.Load() }

func newTensor(h C.msm_tensor) *Tensor {
	t := &Tensor{h: h}
	live.Add(1)
	if scopes.open.Load() == 0 {
		return t
	}
	scopes.Lock()
	if n := len(scopes.stack); n > 0 {
		s := scopes.stack[n-1]
		t.scope = s
		s.ts = append(s.ts, t)
	}
	scopes.Unlock()
	return t
}

// Errorf returns a tensor carrying an error, for code that builds on tensors and must report a failure the same way.
func Errorf(format string, args ...any) *Tensor { return &Tensor{err: fmt.Errorf(format, args...)} }

func errTensor(err error) *Tensor { return &Tensor{err: err} }

// errNil is the error of a nil *Tensor: Grad of a tensor without a gradient, for one.
var errNil = errors.New("torch: nil tensor (no gradient, or an unset result)")

// Err returns the error this tensor carries, if any.
func (t *Tensor) Err() error {
	if t == nil {
		return errNil
	}
	return t.err
}

// Free releases the tensor's memory now. Freeing twice, or freeing an error tensor, does nothing.
func (t *Tensor) Free() {
	if t == nil || t.h == 0 || t.borrowed {
		return
	}
	C.msm_free(t.h)
	t.h = 0
	live.Add(-1)
}

// Scope tracks the tensors created while it is the innermost open scope, and frees them on Close.
type Scope struct {
	ts     []*Tensor
	parent *Scope
}

var scopes struct {
	sync.Mutex
	stack []*Scope
	open  atomic.Int32 // len(stack), readable without the lock
}

// NewScope opens a scope. Close it (defer s.Close()) on every path.
func NewScope() *Scope {
	scopes.Lock()
	defer scopes.Unlock()
	s := &Scope{}
	if n := len(scopes.stack); n > 0 {
		s.parent = scopes.stack[n-1]
	}
	scopes.stack = append(scopes.stack, s)
	scopes.open.Store(int32(len(scopes.stack)))
	return s
}

// Keep exempts tensors from this scope's Close; they move to the enclosing scope, if there is one.
func (s *Scope) Keep(ts ...*Tensor) {
	scopes.Lock()
	defer scopes.Unlock()
	for _, t := range ts {
		if t == nil || t.scope != s {
			continue
		}
		t.scope = s.parent
		if s.parent != nil {
			s.parent.ts = append(s.parent.ts, t)
		}
	}
}

// Close frees every tensor the scope still owns and removes the scope (and any scope opened inside it and left
// open) from the stack.
func (s *Scope) Close() {
	scopes.Lock()
	for i := len(scopes.stack) - 1; i >= 0; i-- {
		if scopes.stack[i] == s {
			scopes.stack = scopes.stack[:i]
			scopes.open.Store(int32(len(scopes.stack)))
			break
		}
	}
	ts := s.ts
	s.ts = nil
	var own []*Tensor
	for _, t := range ts {
		if t.scope == s {
			t.scope = nil
			own = append(own, t)
		}
	}
	scopes.Unlock()
	for _, t := range own {
		t.Free()
	}
}

// Keep removes t from whatever scope tracks it, so that only an explicit Free releases it (model weights,
// optimizer state).
func Keep(ts ...*Tensor) {
	scopes.Lock()
	defer scopes.Unlock()
	for _, t := range ts {
		if t != nil {
			t.scope = nil
		}
	}
}

func shapeC(shape []int64) (*C.int64_t, C.int) {
	if len(shape) == 0 {
		return nil, 0
	}
	return (*C.int64_t)(unsafe.Pointer(&shape[0])), C.int(len(shape))
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// FromBytes creates a tensor of dtype and shape from raw little-endian element bytes (copied), on dev.
func FromBytes(data []byte, dtype DType, shape []int64, dev Device) *Tensor {
	if want := numel(shape) * int64(dtype.Size()); int64(len(data)) != want {
		return errTensor(fmt.Errorf("torch: from bytes: %d bytes for shape %v of %s (want %d)", len(data), shape, dtype, want))
	}
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	sp, nd := shapeC(shape)
	var h C.msm_tensor
	if err := check("from_data", C.msm_from_data(p, C.int(dtype), sp, nd, C.int(dev.Type), C.int(dev.Index), &h)); err != nil {
		return errTensor(err)
	}
	return newTensor(h)
}

func fromSlice[T any](data []T, dtype DType, shape []int64) *Tensor {
	if shape == nil {
		shape = []int64{int64(len(data))}
	}
	var zero T
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), len(data)*int(unsafe.Sizeof(zero)))
	return FromBytes(b, dtype, shape, CPU)
}

// FromFloat32s creates a CPU float32 tensor with a copy of data; a nil shape means 1-D.
func FromFloat32s(data []float32, shape ...int64) *Tensor { return fromSlice(data, Float32, shape) }

// FromFloat64s creates a CPU float64 tensor with a copy of data.
func FromFloat64s(data []float64, shape ...int64) *Tensor { return fromSlice(data, Float64, shape) }

// FromInt64s creates a CPU int64 tensor with a copy of data.
func FromInt64s(data []int64, shape ...int64) *Tensor { return fromSlice(data, Int64, shape) }

// FromInt32s creates a CPU int32 tensor with a copy of data.
func FromInt32s(data []int32, shape ...int64) *Tensor { return fromSlice(data, Int32, shape) }

// FromBools creates a CPU bool tensor with a copy of data.
func FromBools(data []bool, shape ...int64) *Tensor { return fromSlice(data, Bool, shape) }

// Full creates a tensor filled with value.
func Full(value float64, dtype DType, dev Device, shape ...int64) *Tensor {
	sp, nd := shapeC(shape)
	var h C.msm_tensor
	if err := check("full", C.msm_full(C.double(value), C.int(dtype), sp, nd, C.int(dev.Type), C.int(dev.Index), &h)); err != nil {
		return errTensor(err)
	}
	return newTensor(h)
}

// Zeros creates a zero tensor.
func Zeros(dtype DType, dev Device, shape ...int64) *Tensor { return Full(0, dtype, dev, shape...) }

// Ones creates a tensor of ones.
func Ones(dtype DType, dev Device, shape ...int64) *Tensor { return Full(1, dtype, dev, shape...) }

// Arange creates the 1-D tensor start, start+1, ..., end-1.
func Arange(start, end int64, dtype DType, dev Device) *Tensor {
	var h C.msm_tensor
	if err := check("arange", C.msm_arange(C.int64_t(start), C.int64_t(end), C.int(dtype), C.int(dev.Type), C.int(dev.Index), &h)); err != nil {
		return errTensor(err)
	}
	return newTensor(h)
}

// Info describes a tensor.
type Info struct {
	DType        DType
	Shape        []int64
	Device       Device
	RequiresGrad bool
}

// Info returns the tensor's dtype, shape, device and whether it requires grad.
func (t *Tensor) Info() (Info, error) {
	if t == nil {
		return Info{}, errNil
	}
	if t.err != nil {
		return Info{}, t.err
	}
	if t.h == 0 {
		return Info{}, errors.New("torch: use of a freed tensor")
	}
	var dt, nd, devT, devI, rg C.int
	var shape [8]C.int64_t
	if err := check("info", C.msm_info(t.h, &dt, &nd, &shape[0], &devT, &devI, &rg)); err != nil {
		return Info{}, err
	}
	s := make([]int64, int(nd))
	for i := range s {
		s[i] = int64(shape[i])
	}
	return Info{DType(dt), s, Device{DeviceType(devT), int(devI)}, rg != 0}, nil
}

// Shape returns the tensor's sizes (nil for an error tensor).
func (t *Tensor) Shape() []int64 { i, _ := t.Info(); return i.Shape }

// DType returns the element type.
func (t *Tensor) DType() DType { i, _ := t.Info(); return i.DType }

// Device returns where the tensor lives.
func (t *Tensor) Device() Device { i, _ := t.Info(); return i.Device }

// Numel returns the number of elements.
func (t *Tensor) Numel() int64 { return numel(t.Shape()) }

// Size returns the size of dimension d (negative counts from the end).
func (t *Tensor) Size(d int) int64 {
	s := t.Shape()
	if d < 0 {
		d += len(s)
	}
	if d < 0 || d >= len(s) {
		return 0
	}
	return s[d]
}

func (t *Tensor) String() string {
	if t.err != nil {
		return "Tensor(error: " + t.err.Error() + ")"
	}
	i, err := t.Info()
	if err != nil {
		return "Tensor(" + err.Error() + ")"
	}
	return fmt.Sprintf("Tensor(%s %v on %s)", i.DType, i.Shape, i.Device)
}

// Bytes returns a copy of the tensor's elements as little-endian bytes in its own dtype (moved to the CPU and
// made contiguous as needed).
func (t *Tensor) Bytes() ([]byte, error) {
	hostReads.Add(1)
	i, err := t.Info()
	if err != nil {
		return nil, err
	}
	b := make([]byte, numel(i.Shape)*int64(i.DType.Size()))
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	if err := check("copy_out", C.msm_copy_out(t.h, p, C.int64_t(len(b)))); err != nil {
		return nil, err
	}
	return b, nil
}

func values[T any](t *Tensor, dtype DType) ([]T, error) {
	if t == nil {
		return nil, errNil
	}
	if t.err != nil {
		return nil, t.err
	}
	src := t
	if t.DType() != dtype {
		src = t.To(dtype)
		defer src.Free()
	}
	b, err := src.Bytes()
	if err != nil {
		return nil, err
	}
	var zero T
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/int(unsafe.Sizeof(zero))), nil
}

// Float32s returns the elements converted to float32, in row-major order.
func (t *Tensor) Float32s() ([]float32, error) { return values[float32](t, Float32) }

// Float64s returns the elements converted to float64.
func (t *Tensor) Float64s() ([]float64, error) { return values[float64](t, Float64) }

// Int64s returns the elements converted to int64.
func (t *Tensor) Int64s() ([]int64, error) { return values[int64](t, Int64) }

// Int32s returns the elements converted to int32.
func (t *Tensor) Int32s() ([]int32, error) { return values[int32](t, Int32) }

// Bools returns the elements converted to bool.
func (t *Tensor) Bools() ([]bool, error) { return values[bool](t, Bool) }

// hostReads counts the calls that bring tensor values to the host (Bytes and all that use it, Item, the
// gradient norms): on a GPU each makes the host wait for the device.
var hostReads atomic.Int64

// HostReads returns how many times tensor values have been read to the host so far (by any thread): a test's
// measure of device synchronisations, which on a GPU leave the device idle while the host catches up.
func HostReads() int64 { return hostReads.Load() }

// Item returns the value of a one-element tensor.
func (t *Tensor) Item() (float64, error) {
	if t == nil {
		return 0, errNil
	}
	if t.err != nil {
		return 0, t.err
	}
	hostReads.Add(1)
	var v C.double
	if err := check("item", C.msm_item(t.h, &v)); err != nil {
		return 0, err
	}
	return float64(v), nil
}

// ZerosLike returns zeros of t's dtype, shape and device.
func ZerosLike(t *Tensor) *Tensor {
	i, err := t.Info()
	if err != nil {
		return errTensor(err)
	}
	return Zeros(i.DType, i.Device, i.Shape...)
}
