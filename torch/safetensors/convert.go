package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The conversions below copy: they work whatever the alignment of the bytes
// (tensors in a file are not aligned to their element size) and whatever the
// byte order of the machine. Feed large tensors to native code as bytes
// instead.

// Float32sToBytes returns the little-endian bytes of v.
func Float32sToBytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// BytesToFloat32s decodes little-endian float32s; len(b) must be a multiple of 4.
func BytesToFloat32s(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("safetensors: %d bytes are not a whole number of float32s", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// Int64sToBytes returns the little-endian bytes of v.
func Int64sToBytes(v []int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}

// BytesToInt64s decodes little-endian int64s; len(b) must be a multiple of 8.
func BytesToInt64s(b []byte) ([]int64, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("safetensors: %d bytes are not a whole number of int64s", len(b))
	}
	v := make([]int64, len(b)/8)
	for i := range v {
		v[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return v, nil
}

// Uint16sToBytes returns the little-endian bytes of v (BF16 or F16 bits).
func Uint16sToBytes(v []uint16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

// BytesToUint16s decodes little-endian uint16s (BF16 or F16 bits); len(b)
// must be even.
func BytesToUint16s(b []byte) ([]uint16, error) {
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("safetensors: %d bytes are not a whole number of 16-bit values", len(b))
	}
	v := make([]uint16, len(b)/2)
	for i := range v {
		v[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return v, nil
}
