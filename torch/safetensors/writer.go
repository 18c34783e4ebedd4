package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/msmtrain/msmtrain/data/atomicfile"
)

// Spec names a tensor to be written and its layout.
type Spec struct {
	Name  string
	DType DType
	Shape []int64
}

// Tensor is a tensor held in memory: its layout and raw little-endian data.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []byte
}

// Writer writes one safetensors file without holding the tensors' data: the
// header is fixed from the specs given to NewWriter, then each tensor's bytes
// are written once, in any order, straight to their place in the file.
//
// The file is written under a temporary name in the destination directory
// and renamed into place by Close, so a reader never sees a partial file.
// A Writer is not safe for concurrent use.
type Writer struct {
	path      string
	f         *atomicfile.File
	dataStart int64
	slots     map[string]*slot
	left      int   // tensors not yet written
	err       error // first write error; sticky
}

type slot struct {
	off, size int64 // relative to the data section
	done      bool
}

// NewWriter creates the temporary file for path and writes the header for
// specs (sorted by name) and meta. Names must be unique and not
// "__metadata__"; dtypes must be supported.
func NewWriter(path string, specs []Spec, meta map[string]string) (*Writer, error) {
	hdr, slots, total, err := encodeHeader(path, specs, meta)
	if err != nil {
		return nil, err
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	w := &Writer{path: path, f: f, dataStart: int64(len(hdr)), slots: slots, left: len(slots)}
	if err := f.Truncate(int64(len(hdr)) + total); err != nil {
		w.Abort()
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		w.Abort()
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return w, nil
}

// encodeHeader returns the padded header (length field included), the
// position of each tensor in the data section, and the data section's size.
func encodeHeader(path string, specs []Spec, meta map[string]string) ([]byte, map[string]*slot, int64, error) {
	sorted := slices.Clone(specs)
	slices.SortFunc(sorted, func(a, b Spec) int { return cmp.Compare(a.Name, b.Name) })
	var js bytes.Buffer
	js.WriteByte('{')
	if len(meta) > 0 {
		m, err := json.Marshal(meta)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("safetensors: %s: __metadata__: %w", path, err)
		}
		js.WriteString(`"__metadata__":`)
		js.Write(m)
	}
	slots := make(map[string]*slot, len(sorted))
	var off int64
	for i, s := range sorted {
		switch {
		case s.Name == "" || s.Name == "__metadata__":
			return nil, nil, 0, fmt.Errorf("safetensors: %s: invalid tensor name %q", path, s.Name)
		case i > 0 && sorted[i-1].Name == s.Name:
			return nil, nil, 0, fmt.Errorf("safetensors: %s: duplicate tensor name %q", path, s.Name)
		case !s.DType.Supported():
			return nil, nil, 0, fmt.Errorf("%w %q for tensor %q in %s", ErrUnsupportedDType, s.DType, s.Name, path)
		}
		n, ok := numel(s.Shape, s.DType.Size())
		if !ok {
			return nil, nil, 0, fmt.Errorf("safetensors: %s: tensor %q: bad shape %v", path, s.Name, s.Shape)
		}
		size := n * int64(s.DType.Size())
		slots[s.Name] = &slot{off: off, size: size}
		name, _ := json.Marshal(s.Name)
		if js.Len() > 1 {
			js.WriteByte(',')
		}
		js.Write(name)
		fmt.Fprintf(&js, `:{"dtype":%q,"shape":[`, s.DType)
		for j, d := range s.Shape {
			if j > 0 {
				js.WriteByte(',')
			}
			js.WriteString(strconv.FormatInt(d, 10))
		}
		fmt.Fprintf(&js, `],"data_offsets":[%d,%d]}`, off, off+size)
		off += size
	}
	js.WriteByte('}')
	for js.Len()%8 != 0 {
		js.WriteByte(' ')
	}
	hdr := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+js.Len()), uint64(js.Len()))
	return append(hdr, js.Bytes()...), slots, off, nil
}

// WriteTensor writes the data of the named tensor, which must have exactly
// the size its spec implies. Each tensor is written once.
func (w *Writer) WriteTensor(name string, data []byte) error {
	if w.err != nil {
		return w.err
	}
	s, ok := w.slots[name]
	switch {
	case !ok:
		return fmt.Errorf("%w: %q is not among the tensors given to NewWriter for %s", ErrNotFound, name, w.path)
	case s.done:
		return fmt.Errorf("safetensors: %s: tensor %q written twice", w.path, name)
	case int64(len(data)) != s.size:
		return fmt.Errorf("safetensors: %s: tensor %q has %d bytes, its spec needs %d", w.path, name, len(data), s.size)
	}
	if _, err := w.f.WriteAt(data, w.dataStart+s.off); err != nil {
		w.err = fmt.Errorf("safetensors: %s: writing %q: %w", w.path, name, err)
		return w.err
	}
	s.done = true
	w.left--
	return nil
}

// Close checks that every tensor was written, syncs the file, renames it to
// its destination and syncs the directory. On any error the temporary file
// is removed and the destination is left untouched.
func (w *Writer) Close() error {
	if w.f == nil {
		return fmt.Errorf("safetensors: %s: writer already closed", w.path)
	}
	if w.err == nil && w.left > 0 {
		var missing []string
		for name, s := range w.slots {
			if !s.done {
				missing = append(missing, name)
			}
		}
		slices.Sort(missing)
		w.err = fmt.Errorf("safetensors: %s: %d tensors never written, first %q", w.path, len(missing), missing[0])
	}
	if w.err != nil {
		w.Abort()
		return w.err
	}
	f := w.f
	w.f = nil
	if err := f.Commit(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// Abort discards the temporary file. It is a no-op after Close.
func (w *Writer) Abort() error {
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	return f.Abort()
}

// Write writes tensors to the safetensors file at path atomically. Tensors
// are stored sorted by name whatever their order in the slice.
func Write(path string, tensors []Tensor, meta map[string]string) error {
	specs := make([]Spec, len(tensors))
	for i, t := range tensors {
		specs[i] = Spec{Name: t.Name, DType: t.DType, Shape: t.Shape}
	}
	w, err := NewWriter(path, specs, meta)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := w.WriteTensor(t.Name, t.Data); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}
