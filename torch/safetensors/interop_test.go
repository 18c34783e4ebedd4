package safetensors

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// pyTensor is what the reference scripts report about one tensor.
type pyTensor struct {
	DType  string        `json:"dtype"` // safetensors spelling
	Shape  []int64       `json:"shape"`
	Hex    string        `json:"hex"`    // raw little-endian bytes
	Values []json.Number `json:"values"` // flattened; floats widened to double, bools as 0/1
}

type pyReport struct {
	Meta    map[string]string   `json:"meta"`
	Tensors map[string]pyTensor `json:"tensors"`
}

// The shared Python half: the dtype table and how a tensor is reported.
const pyCommon = `
import json, struct, sys, torch
DT = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
      "U8": torch.uint8, "BOOL": torch.bool}
def raw(t):
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return t.contiguous().numpy().tobytes()
def values(t):
    t = t.flatten()
    if t.dtype in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
        return t.double().tolist()
    return t.to(torch.int64).tolist()
def report(dt, t):
    return {"dtype": dt, "shape": list(t.shape), "hex": raw(t).hex(), "values": values(t)}
`

// pyRead parses a safetensors file with json and torch.frombuffer only and
// checks the layout rules of written files.
const pyRead = pyCommon + `
blob = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", blob[:8])
assert n % 8 == 0, "header not padded to 8: %d" % n
hdr = json.loads(blob[8:8 + n])
data = blob[8 + n:]
meta = hdr.pop("__metadata__", {})
names = list(hdr)
assert names == sorted(names), names
end = 0
out = {}
for name in names:
    e = hdr[name]
    b, f = e["data_offsets"]
    assert b == end, (name, b, end)
    end = f
    dt = DT[e["dtype"]]
    if f > b:
        t = torch.frombuffer(bytearray(data[b:f]), dtype=dt).reshape(e["shape"])
    else:
        t = torch.empty(e["shape"], dtype=dt)
    out[name] = report(e["dtype"], t)
assert end == len(data), (end, len(data))
json.dump({"meta": meta, "tensors": out}, open(sys.argv[2], "w"))
`

// pyWrite writes a safetensors file by hand (json + tensor bytes, header in
// insertion order, data in that order, no padding) and reports its tensors.
const pyWrite = pyCommon + `
torch.manual_seed(7)
ts = {
    "z.f32": ("F32", torch.randn(3, 5)),
    "a.f64": ("F64", torch.randn(4, dtype=torch.float64)),
    "m.bf16": ("BF16", torch.randn(2, 3, 2).to(torch.bfloat16)),
    "m.f16": ("F16", (torch.randn(9) * 100).to(torch.float16)),
    "i64": ("I64", torch.tensor([[-(2**62), 2**62 + 12345], [0, -1]], dtype=torch.int64)),
    "i32": ("I32", torch.randint(-2**31, 2**31 - 1, (5,), dtype=torch.int32)),
    "i16": ("I16", torch.randint(-2**15, 2**15 - 1, (3,), dtype=torch.int16)),
    "i8": ("I8", torch.randint(-128, 127, (7,), dtype=torch.int8)),
    "u8": ("U8", torch.randint(0, 255, (2, 2), dtype=torch.uint8)),
    "b": ("BOOL", torch.tensor([True, False, True])),
    "scalar": ("F32", torch.tensor(3.25)),
    "empty": ("F16", torch.zeros(0, 4, dtype=torch.float16)),
}
hdr, blobs, off = {"__metadata__": {"format": "pt", "by": "python"}}, [], 0
for name, (dt, t) in ts.items():
    b = raw(t)
    hdr[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
h = json.dumps(hdr).encode()
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
json.dump({"meta": hdr["__metadata__"], "tensors": {n: report(dt, t) for n, (dt, t) in ts.items()}},
          open(sys.argv[2], "w"))
`

func readReport(t *testing.T, path string) pyReport {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r pyReport
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("report: %v", err)
	}
	return r
}

// decode widens the elements of a tensor's bytes the way the scripts report
// them, using this package's helpers for the 16-bit floats.
func decode(t *testing.T, dt DType, b []byte) []float64 {
	t.Helper()
	n := len(b) / dt.Size()
	out := make([]float64, n)
	for i := range n {
		e := b[i*dt.Size():]
		switch dt {
		case F64:
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(e))
		case F32:
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(e)))
		case BF16:
			out[i] = float64(F32FromBF16(binary.LittleEndian.Uint16(e)))
		case F16:
			out[i] = float64(F32FromF16(binary.LittleEndian.Uint16(e)))
		case I64:
			out[i] = float64(int64(binary.LittleEndian.Uint64(e)))
		case I32:
			out[i] = float64(int32(binary.LittleEndian.Uint32(e)))
		case I16:
			out[i] = float64(int16(binary.LittleEndian.Uint16(e)))
		case I8:
			out[i] = float64(int8(e[0]))
		case U8, Bool:
			out[i] = float64(e[0])
		default:
			t.Fatalf("decode %s", dt)
		}
	}
	return out
}

// checkValues compares values with the script's report; int64s are compared
// exactly as integers.
func checkValues(t *testing.T, name string, dt DType, data []byte, want []json.Number) {
	t.Helper()
	if dt == I64 {
		got, err := BytesToInt64s(data)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			if wi, _ := strconv.ParseInt(string(w), 10, 64); got[i] != wi {
				t.Errorf("%s[%d] = %d, python %d", name, i, got[i], wi)
			}
		}
		return
	}
	got := decode(t, dt, data)
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, python %d", name, len(got), len(want))
	}
	for i, w := range want {
		wf, err := strconv.ParseFloat(string(w), 64)
		if err != nil || got[i] != wf {
			t.Errorf("%s[%d] = %v, python %v", name, i, got[i], w)
		}
	}
}

func testTensors() []Tensor {
	r := rand.New(rand.NewPCG(1, 2))
	f32 := make([]float32, 12)
	for i := range f32 {
		f32[i] = float32(r.NormFloat64())
	}
	bf := make([]uint16, 6)
	for i := range bf {
		bf[i] = BF16FromF32(float32(r.NormFloat64()))
	}
	hf := make([]uint16, 7)
	for i := range hf {
		hf[i] = F16FromF32(float32(r.NormFloat64() * 1000))
	}
	f64 := []float64{math.Pi, -1e300, 5e-324, 0}
	f64b := make([]byte, 0, 32)
	for _, x := range f64 {
		f64b = binary.LittleEndian.AppendUint64(f64b, math.Float64bits(x))
	}
	i64 := []int64{math.MinInt64, math.MaxInt64, -3, 1 << 40}
	return []Tensor{
		{Name: "w.f32", DType: F32, Shape: []int64{3, 4}, Data: Float32sToBytes(f32)},
		{Name: "w.f64", DType: F64, Shape: []int64{4}, Data: f64b},
		{Name: "w.bf16", DType: BF16, Shape: []int64{2, 3}, Data: Uint16sToBytes(bf)},
		{Name: "A.f16", DType: F16, Shape: []int64{7}, Data: Uint16sToBytes(hf)},
		{Name: "i64", DType: I64, Shape: []int64{2, 2}, Data: Int64sToBytes(i64)},
		{Name: "i32", DType: I32, Shape: []int64{2}, Data: []byte{1, 0, 0, 0x80, 0xff, 0xff, 0xff, 0xff}},
		{Name: "i16", DType: I16, Shape: []int64{2}, Data: []byte{0x34, 0x12, 0, 0x80}},
		{Name: "i8", DType: I8, Shape: []int64{3}, Data: []byte{0x80, 0x7f, 0xff}},
		{Name: "u8", DType: U8, Shape: []int64{1, 3}, Data: []byte{0, 200, 255}},
		{Name: "b", DType: Bool, Shape: []int64{3}, Data: []byte{1, 0, 1}},
		{Name: "scalar", DType: F32, Shape: []int64{}, Data: Float32sToBytes([]float32{-0.5})},
		{Name: "empty", DType: F32, Shape: []int64{0, 3}, Data: nil},
	}
}

func TestGoWritesPythonReads(t *testing.T) {
	requireTorch(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "go.safetensors")
	tensors := testTensors()
	meta := map[string]string{"format": "pt", "note": "h\u00e9llo \"quoted\"\n"}
	if err := Write(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
	runPython(t, dir, pyRead, path, filepath.Join(dir, "report.json"))
	rep := readReport(t, filepath.Join(dir, "report.json"))
	if !maps.Equal(rep.Meta, meta) {
		t.Errorf("python metadata %q, wrote %q", rep.Meta, meta)
	}
	if len(rep.Tensors) != len(tensors) {
		t.Errorf("python read %d tensors, wrote %d", len(rep.Tensors), len(tensors))
	}
	for _, want := range tensors {
		t.Run(want.Name, func(t *testing.T) {
			got, ok := rep.Tensors[want.Name]
			switch {
			case !ok:
				t.Fatal("missing in python")
			case got.DType != string(want.DType) || !slices.Equal(got.Shape, want.Shape):
				t.Errorf("python sees %s %v, wrote %s %v", got.DType, got.Shape, want.DType, want.Shape)
			case got.Hex != hex.EncodeToString(want.Data):
				t.Errorf("python bytes %s, wrote %x", got.Hex, want.Data)
			}
			checkValues(t, want.Name, want.DType, want.Data, got.Values)
		})
	}
}

func TestPythonWritesGoReads(t *testing.T) {
	requireTorch(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "py.safetensors")
	runPython(t, dir, pyWrite, path, filepath.Join(dir, "report.json"))
	rep := readReport(t, filepath.Join(dir, "report.json"))
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !maps.Equal(f.Metadata(), rep.Meta) {
		t.Errorf("metadata %q, python wrote %q", f.Metadata(), rep.Meta)
	}
	if got := f.Names(); len(got) != len(rep.Tensors) || !slices.IsSorted(got) {
		t.Errorf("Names() = %q, want the %d python tensors sorted", got, len(rep.Tensors))
	}
	for name, want := range rep.Tensors {
		t.Run(name, func(t *testing.T) {
			info, ok := f.Info(name)
			if !ok {
				t.Fatal("missing")
			}
			if string(info.DType) != want.DType || !slices.Equal(info.Shape, want.Shape) || info.File != path {
				t.Errorf("Info = %+v, python wrote %s %v", info, want.DType, want.Shape)
			}
			data, err := f.Bytes(name)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(data) != want.Hex {
				t.Errorf("bytes %x, python wrote %s", data, want.Hex)
			}
			checkValues(t, name, info.DType, data, want.Values)
		})
	}
}
