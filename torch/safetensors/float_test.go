package safetensors

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// pyConvert converts float32s with torch's own casts and widens every 16-bit
// pattern back to float32.
const pyConvert = `
import sys, torch
x = torch.frombuffer(bytearray(open(sys.argv[1], "rb").read()), dtype=torch.float32)
open(sys.argv[2], "wb").write(x.to(torch.bfloat16).view(torch.int16).numpy().tobytes())
open(sys.argv[3], "wb").write(x.to(torch.float16).view(torch.int16).numpy().tobytes())
bits = torch.arange(65536, dtype=torch.int32).to(torch.int16)
open(sys.argv[4], "wb").write(bits.view(torch.bfloat16).float().numpy().tobytes())
open(sys.argv[5], "wb").write(bits.view(torch.float16).float().numpy().tobytes())
`

// conversionInputs returns edge cases, exact rounding ties for both formats
// across their exponent ranges (subnormal halves included) and random bit
// patterns.
func conversionInputs() []float32 {
	in := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65519.996, 65520, -65520, 1e-8, 3e-8,
		5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 8.940697e-08, 6.097555e-05, 6.1035156e-05,
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 1.1754942e-38,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0x7fc00001), math.Float32frombits(0xff800001), math.Float32frombits(0x7f7fffff),
		math.Float32frombits(0x7f7f8000), math.Float32frombits(0x3f808000), math.Float32frombits(0x3f818000)}
	for e := uint32(90); e < 160; e++ { // around the half's range, both tie parities
		for _, low := range []uint32{0x1000, 0x3000, 0x0fff, 0x1001, 0x7fffff, 0x400000, 0x401000, 0x3ff000} {
			for _, s := range []uint32{0, 1 << 31} {
				in = append(in, math.Float32frombits(s|e<<23|low))
			}
		}
	}
	for e := uint32(0); e < 256; e++ { // bf16 ties at every exponent
		for _, low := range []uint32{0x8000, 0x18000, 0x7fff, 0x8001} {
			in = append(in, math.Float32frombits(e<<23|low))
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		in = append(in, math.Float32frombits(r.Uint32()))
	}
	return in
}

func TestFloatConversionsMatchTorch(t *testing.T) {
	requireTorch(t)
	dir := t.TempDir()
	in := conversionInputs()
	p := func(s string) string { return filepath.Join(dir, s) }
	if err := os.WriteFile(p("in"), Float32sToBytes(in), 0o644); err != nil {
		t.Fatal(err)
	}
	runPython(t, dir, pyConvert, p("in"), p("bf16"), p("f16"), p("bf16to32"), p("f16to32"))
	read16 := func(name string) []uint16 {
		b, err := os.ReadFile(p(name))
		if err != nil {
			t.Fatal(err)
		}
		v, err := BytesToUint16s(b)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	read32 := func(name string) []float32 {
		b, err := os.ReadFile(p(name))
		if err != nil {
			t.Fatal(err)
		}
		v, err := BytesToFloat32s(b)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name  string
		torch []uint16
		conv  func(float32) uint16
		back  func(uint16) float32
	}{
		{"bf16", read16("bf16"), BF16FromF32, F32FromBF16},
		{"f16", read16("f16"), F16FromF32, F32FromF16},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/from_f32", func(t *testing.T) {
			bad := 0
			for i, x := range in {
				got, want := tc.conv(x), tc.torch[i]
				if x != x { // torch writes a canonical NaN; we keep sign and payload
					if g := tc.back(got); g == g {
						t.Errorf("%s(NaN %#08x) = %#04x, not a NaN", tc.name, math.Float32bits(x), got)
					}
					continue
				}
				if got != want && bad < 10 {
					bad++
					t.Errorf("%s(%g = %#08x) = %#04x, torch %#04x", tc.name, x, math.Float32bits(x), got, want)
				}
			}
		})
	}
	for _, tc := range []struct {
		name  string
		torch []float32
		back  func(uint16) float32
	}{{"bf16", read32("bf16to32"), F32FromBF16}, {"f16", read32("f16to32"), F32FromF16}} {
		t.Run(tc.name+"/to_f32_all_65536", func(t *testing.T) {
			bad := 0
			for h := range 65536 {
				got, want := tc.back(uint16(h)), tc.torch[h]
				same := math.Float32bits(got) == math.Float32bits(want) || got != got && want != want
				if !same && bad < 10 {
					bad++
					t.Errorf("%s %#04x -> %g (%#08x), torch %g (%#08x)", tc.name, h, got, math.Float32bits(got), want, math.Float32bits(want))
				}
			}
		})
	}
}

// Every 16-bit value survives widening and narrowing again.
func TestFloatRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		to   func(float32) uint16
		back func(uint16) float32
	}{{"bf16", BF16FromF32, F32FromBF16}, {"f16", F16FromF32, F32FromF16}} {
		t.Run(tc.name, func(t *testing.T) {
			for h := range 65536 {
				f := tc.back(uint16(h))
				if f != f {
					continue
				}
				if got := tc.to(f); got != uint16(h) {
					t.Fatalf("%#04x -> %g -> %#04x", h, f, got)
				}
			}
		})
	}
}

func TestSliceConversions(t *testing.T) {
	f := []float32{1.5, -0, float32(math.Inf(-1)), math.SmallestNonzeroFloat32}
	if got, err := BytesToFloat32s(Float32sToBytes(f)); err != nil || !equalBits(got, f) {
		t.Errorf("float32 round trip: %v %v", got, err)
	}
	i := []int64{math.MinInt64, -1, 0, math.MaxInt64}
	if got, err := BytesToInt64s(Int64sToBytes(i)); err != nil || len(got) != 4 || got[0] != i[0] || got[3] != i[3] || got[1] != -1 {
		t.Errorf("int64 round trip: %v %v", got, err)
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"float32", func() error { _, err := BytesToFloat32s(make([]byte, 5)); return err }()},
		{"int64", func() error { _, err := BytesToInt64s(make([]byte, 7)); return err }()},
		{"uint16", func() error { _, err := BytesToUint16s(make([]byte, 3)); return err }()},
	} {
		t.Run(tc.name+"/ragged", func(t *testing.T) {
			if tc.err == nil {
				t.Error("ragged byte count accepted")
			}
		})
	}
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
