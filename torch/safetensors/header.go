package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"slices"
)

// maxHeaderLen bounds the JSON header, as the reference Rust crate does.
const maxHeaderLen = 100 << 20

// header is a parsed and validated file header.
type header struct {
	infos map[string]Info
	names []string // sorted
	meta  map[string]string
}

type rawEntry struct {
	DType   *DType   `json:"dtype"`
	Shape   *[]int64 `json:"shape"`
	Offsets *[]int64 `json:"data_offsets"`
}

// parse validates the header of the safetensors file whose full contents are
// b, naming file in errors.
func parse(file string, b []byte) (*header, error) {
	if len(b) < 8 {
		return nil, headerErr(file, "file is %d bytes, shorter than the 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return nil, headerErr(file, "header length %d exceeds the %d bytes after the length field", n, len(b)-8)
	}
	if n > maxHeaderLen {
		return nil, headerErr(file, "header length %d exceeds the %d-byte limit", n, maxHeaderLen)
	}
	js := b[8 : 8+n]
	dataStart := int64(8 + n)
	dataLen := int64(len(b)) - dataStart
	if len(bytes.TrimLeft(js, " \t\r\n")) == 0 || bytes.TrimLeft(js, " \t\r\n")[0] != '{' {
		return nil, headerErr(file, "header is not a JSON object")
	}

	h := &header{infos: map[string]Info{}}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // '{', checked above
		return nil, headerErr(file, "bad JSON header: %v", err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, headerErr(file, "bad JSON header: %v", err)
		}
		name, _ := tok.(string) // object keys are always strings
		if seen[name] {
			return nil, headerErr(file, "duplicate name %q in header", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, headerErr(file, "bad JSON header at %q: %v", name, err)
		}
		if name == "__metadata__" {
			if err := json.Unmarshal(raw, &h.meta); err != nil || h.meta == nil {
				return nil, headerErr(file, "__metadata__ is not an object of strings")
			}
			continue
		}
		info, err := parseEntry(file, name, raw, dataStart)
		if err != nil {
			return nil, err
		}
		h.infos[name] = info
		h.names = append(h.names, name)
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, headerErr(file, "bad JSON header: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, headerErr(file, "trailing bytes after the JSON header object")
	}
	if err := h.checkLayout(file, dataStart, dataLen); err != nil {
		return nil, err
	}
	slices.Sort(h.names)
	return h, nil
}

func parseEntry(file, name string, raw json.RawMessage, dataStart int64) (Info, error) {
	var e rawEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return Info{}, headerErr(file, "tensor %q: bad entry: %v", name, err)
	}
	switch {
	case e.DType == nil:
		return Info{}, headerErr(file, "tensor %q: missing dtype", name)
	case e.Shape == nil:
		return Info{}, headerErr(file, "tensor %q: missing shape", name)
	case e.Offsets == nil:
		return Info{}, headerErr(file, "tensor %q: missing data_offsets", name)
	}
	size := e.DType.Size()
	if size == 0 {
		return Info{}, headerErr(file, "tensor %q: unknown dtype %q", name, *e.DType)
	}
	off := *e.Offsets
	if len(off) != 2 || off[0] < 0 || off[1] < off[0] {
		return Info{}, headerErr(file, "tensor %q: bad data_offsets %v", name, off)
	}
	n, ok := numel(*e.Shape, size)
	if !ok {
		return Info{}, headerErr(file, "tensor %q: bad shape %v", name, *e.Shape)
	}
	if n*int64(size) != off[1]-off[0] {
		return Info{}, headerErr(file, "tensor %q: shape %v of %s is %d bytes but data_offsets %v span %d",
			name, *e.Shape, *e.DType, n*int64(size), off, off[1]-off[0])
	}
	shape := *e.Shape
	if shape == nil {
		shape = []int64{}
	}
	return Info{Name: name, DType: *e.DType, Shape: shape, Offset: dataStart + off[0], Size: off[1] - off[0], File: file}, nil
}

// checkLayout requires the tensors to tile the data section exactly: no
// bytes outside it, no overlaps, no gaps.
func (h *header) checkLayout(file string, dataStart, dataLen int64) error {
	byOff := slices.Clone(h.names)
	slices.SortFunc(byOff, func(a, b string) int {
		ia, ib := h.infos[a], h.infos[b]
		if ia.Offset != ib.Offset {
			return int(min(max(ia.Offset-ib.Offset, -1), 1))
		}
		return int(min(max(ia.Size-ib.Size, -1), 1))
	})
	end := int64(0)
	for _, name := range byOff {
		in := h.infos[name]
		b, e := in.Offset-dataStart, in.Offset-dataStart+in.Size
		switch {
		case e > dataLen:
			return headerErr(file, "tensor %q: data_offsets [%d %d] beyond the %d data bytes", name, b, e, dataLen)
		case b < end:
			return headerErr(file, "tensor %q: data_offsets [%d %d] overlap the previous tensor ending at %d", name, b, e, end)
		case b > end:
			return headerErr(file, "tensor %q: gap of %d bytes before data_offsets [%d %d]", name, b-end, b, e)
		}
		end = e
	}
	if end != dataLen {
		return headerErr(file, "tensors cover %d bytes but the data section is %d bytes", end, dataLen)
	}
	return nil
}
