package torch

import (
	"fmt"

	"github.com/msmtrain/msmtrain/torch/safetensors"
)

var stDTypes = map[safetensors.DType]DType{
	safetensors.F32: Float32, safetensors.BF16: BFloat16, safetensors.F16: Float16, safetensors.I64: Int64,
	safetensors.I32: Int32, safetensors.Bool: Bool, safetensors.U8: Uint8, safetensors.F64: Float64,
}

// STDType is the safetensors name of d.
func STDType(d DType) safetensors.DType {
	for k, v := range stDTypes {
		if v == d {
			return k
		}
	}
	return ""
}

// TensorSource is what LoadTensor reads from: a safetensors File or Model.
type TensorSource interface {
	Info(name string) (safetensors.Info, bool)
	Bytes(name string) ([]byte, error)
}

// LoadTensor creates the tensor name of src on dev, straight from the mapped file (one copy, onto the device).
func LoadTensor(src TensorSource, name string, dev Device) *Tensor {
	info, ok := src.Info(name)
	if !ok {
		return errTensor(fmt.Errorf("torch: tensor %q not found", name))
	}
	dt, ok := stDTypes[info.DType]
	if !ok {
		return errTensor(fmt.Errorf("torch: tensor %q in %s has dtype %s, which msmtrain does not load", name, info.File, info.DType))
	}
	b, err := src.Bytes(name)
	if err != nil {
		return errTensor(err)
	}
	return FromBytes(b, dt, info.Shape, dev)
}

// LoadFile opens a safetensors file and loads every tensor onto dev.
func LoadFile(path string, dev Device) (map[string]*Tensor, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]*Tensor{}
	for _, n := range f.Names() {
		t := LoadTensor(f, n, dev)
		if err := t.Err(); err != nil {
			for _, o := range out {
				o.Free()
			}
			return nil, err
		}
		out[n] = t
	}
	return out, nil
}

// SaveFile writes tensors to a safetensors file atomically, streaming one tensor at a time from the device.
func SaveFile(path string, tensors map[string]*Tensor, meta map[string]string) error {
	specs := make([]safetensors.Spec, 0, len(tensors))
	for name, t := range tensors {
		i, err := t.Info()
		if err != nil {
			return fmt.Errorf("torch: save %s: tensor %q: %w", path, name, err)
		}
		st := STDType(i.DType)
		if st == "" {
			return fmt.Errorf("torch: save %s: tensor %q has unsupported dtype %s", path, name, i.DType)
		}
		specs = append(specs, safetensors.Spec{Name: name, DType: st, Shape: i.Shape})
	}
	w, err := safetensors.NewWriter(path, specs, meta)
	if err != nil {
		return err
	}
	for name, t := range tensors {
		b, err := t.Bytes()
		if err == nil {
			err = w.WriteTensor(name, b)
		}
		if err != nil {
			w.Abort()
			return fmt.Errorf("torch: save %s: tensor %q: %w", path, name, err)
		}
	}
	return w.Close()
}
