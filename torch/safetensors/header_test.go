package safetensors

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawFile assembles a file from a hand-written header and data, bypassing
// the writer so that the reader sees exactly what a test spells out.
func rawFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func writeRaw(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenRejectsCorruptHeaders(t *testing.T) {
	d8 := make([]byte, 8)
	tests := []struct {
		name string
		file []byte
		want string // in HeaderError.Reason
	}{
		{"short file", []byte{1, 2, 3}, "shorter than the 8-byte"},
		{"length beyond file", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "exceeds the 2 bytes"},
		{"huge length", append(binary.LittleEndian.AppendUint64(nil, 1<<63), "{}"...), "exceeds"},
		{"bad json", rawFile(`{"a": {"dtype": "F32",`, nil), "bad JSON"},
		{"not an object", rawFile(`[1, 2]`, nil), "not a JSON object"},
		{"empty header", rawFile(``, nil), "not a JSON object"},
		{"trailing garbage", rawFile(`{} x`, nil), "trailing bytes"},
		{"second object", rawFile(`{}{}`, nil), "trailing bytes"},
		{"unknown dtype", rawFile(`{"a":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}}`, d8), `"a": unknown dtype "F7"`},
		{"missing dtype", rawFile(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, d8), "missing dtype"},
		{"missing shape", rawFile(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, d8), "missing shape"},
		{"missing offsets", rawFile(`{"a":{"dtype":"F32","shape":[2]}}`, d8), "missing data_offsets"},
		{"entry not object", rawFile(`{"a":[1]}`, d8), `"a": bad entry`},
		{"float shape", rawFile(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}`, d8), "bad entry"},
		{"negative dim", rawFile(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, d8), "bad shape"},
		{"overflowing shape", rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, d8), "bad shape"},
		{"shape vs span", rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, d8), "is 12 bytes but data_offsets [0 8] span 8"},
		{"reversed offsets", rawFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}}`, d8), "bad data_offsets"},
		{"three offsets", rawFile(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8,9]}}`, d8), "bad data_offsets"},
		{"out of range", rawFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, d8), "beyond the 8 data bytes"},
		{"overlap", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}`, d8), "overlap"},
		{"gap", rawFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}`, d8), "gap of 2 bytes"},
		{"uncovered tail", rawFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, d8), "cover 2 bytes but the data section is 8"},
		{"duplicate name", rawFile(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}`, d8), `duplicate name "a"`},
		{"metadata not strings", rawFile(`{"__metadata__":{"n":1}}`, nil), "__metadata__"},
		{"metadata null", rawFile(`{"__metadata__":null}`, nil), "__metadata__"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRaw(t, tc.file)
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatal("Open succeeded")
			}
			var he *HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("error %v (%T) is not a *HeaderError", err, err)
			}
			if he.File != path || !strings.Contains(he.Reason, tc.want) {
				t.Errorf("got %q, want file %s and reason containing %q", err, path, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "safetensors: "+path+": ") {
				t.Errorf("message %q lacks the package prefix and file", err)
			}
		})
	}
}

func TestOpenAcceptsEdgeCases(t *testing.T) {
	tests := []struct {
		name  string
		file  []byte
		names []string
	}{
		{"empty", rawFile(`{}`, nil), nil},
		{"padded", rawFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}      `, []byte{1, 2}), []string{"a"}},
		{"data out of name order", rawFile(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"I16","shape":[],"data_offsets":[1,3]}}`, []byte{1, 2, 3}), []string{"a", "b"}},
		{"zero-size tensors", rawFile(`{"e":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"z":{"dtype":"F64","shape":[3,0],"data_offsets":[1,1]}}`, []byte{9}), []string{"a", "e", "z"}},
		{"unknown entry fields ignored", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":true}}`, []byte{9}), []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Open(writeRaw(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := f.Names(); strings.Join(got, ",") != strings.Join(tc.names, ",") {
				t.Errorf("Names() = %q, want %q", got, tc.names)
			}
			for _, n := range tc.names {
				info, _ := f.Info(n)
				b, err := f.Bytes(n)
				if err != nil || int64(len(b)) != info.Size {
					t.Errorf("Bytes(%q) = %d bytes, %v; Info says %d", n, len(b), err, info.Size)
				}
			}
		})
	}
}

func TestBytesErrors(t *testing.T) {
	path := writeRaw(t, rawFile(`{"f8":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]},"u":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}`, []byte{1, 2, 3}))
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, tensor string
		want         error
	}{
		{"unsupported dtype", "f8", ErrUnsupportedDType},
		{"absent", "nope", ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.Bytes(tc.tensor); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Bytes(%q) error %v, want %v naming %s", tc.tensor, err, tc.want, path)
			}
		})
	}
	if b, err := f.Bytes("u"); err != nil || len(b) != 1 || b[0] != 3 {
		t.Errorf(`Bytes("u") = %v, %v`, b, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Bytes("u"); !errors.Is(err, ErrClosed) {
		t.Errorf("Bytes after Close: %v", err)
	}
}
