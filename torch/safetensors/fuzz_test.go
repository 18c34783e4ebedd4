package safetensors

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the header parser: it must never panic,
// must fail only with a *HeaderError, and what it accepts must describe
// tensors that tile the data section.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.safetensors"))
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata/")
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parse("fuzz", b)
		if err != nil {
			var he *HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("error %v is not a *HeaderError", err)
			}
			return
		}
		var total int64
		for _, n := range h.names {
			in := h.infos[n]
			if in.Offset < 8 || in.Size < 0 || in.Offset+in.Size > int64(len(b)) {
				t.Fatalf("accepted %q at [%d, +%d) in a %d-byte file", n, in.Offset, in.Size, len(b))
			}
			total += in.Size
		}
		if dataLen := int64(len(b)) - 8 - int64(binary.LittleEndian.Uint64(b)); total != dataLen {
			t.Fatalf("accepted tensors covering %d bytes of a %d-byte data section", total, dataLen)
		}
	})
}
