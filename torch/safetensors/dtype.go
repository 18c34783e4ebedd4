package safetensors

// DType is a safetensors element type, spelled as in the file header
// ("F32", "BF16", ...).
type DType string

// The supported element types. Tensors of these types can be read and written.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Element types the format defines that this package recognises in headers
// but does not read or write: opening a file holding them succeeds, and
// [File.Bytes] of such a tensor returns an error wrapping
// [ErrUnsupportedDType].
const (
	U64    DType = "U64"
	U32    DType = "U32"
	U16    DType = "U16"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
	F8E8M0 DType = "F8_E8M0"
	C64    DType = "C64"
)

var dtypeSizes = map[DType]int{
	F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, Bool: 1,
	U64: 8, U32: 4, U16: 2, F8E4M3: 1, F8E5M2: 1, F8E8M0: 1, C64: 8,
}

var supported = map[DType]bool{
	F64: true, F32: true, F16: true, BF16: true, I64: true, I32: true, I16: true, I8: true, U8: true, Bool: true,
}

// Size returns the size of one element in bytes, or 0 for an unknown type.
func (d DType) Size() int { return dtypeSizes[d] }

// Supported reports whether tensors of type d can be read and written.
func (d DType) Supported() bool { return supported[d] }

// numel returns the element count of shape and whether it is valid
// (non-negative dimensions, no overflow of size*elements in int64).
func numel(shape []int64, size int) (int64, bool) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d != 0 && n > (1<<62)/int64(size)/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}
