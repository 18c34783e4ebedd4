package safetensors

import (
	"fmt"
	"slices"
)

// Info describes one tensor of a file. Offset and Size are in bytes and
// absolute in File, so the tensor's data is File[Offset : Offset+Size].
type Info struct {
	Name   string
	DType  DType
	Shape  []int64
	Offset int64
	Size   int64
	File   string
}

// File is an open safetensors file, mapped read-only into memory.
//
// A File is safe for concurrent use by readers. The slices returned by Bytes
// point into the mapping and must not be used after Close.
type File struct {
	path string
	data []byte // the whole file
	h    *header
	// unmap releases data; nil once closed.
	unmap func() error
}

// Open maps the safetensors file at path read-only and validates its header:
// dtypes, shapes against data_offsets, and offsets that tile the data
// section exactly. Header problems are reported as *HeaderError.
func Open(path string) (*File, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	h, err := parse(path, data)
	if err != nil {
		unmap()
		return nil, err
	}
	return &File{path: path, data: data, h: h, unmap: unmap}, nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Names returns the tensor names in sorted order. The slice is a fresh copy.
func (f *File) Names() []string { return slices.Clone(f.h.names) }

// Info returns the description of the named tensor.
func (f *File) Info(name string) (Info, bool) {
	in, ok := f.h.infos[name]
	in.Shape = slices.Clone(in.Shape)
	return in, ok
}

// Metadata returns a copy of the header's __metadata__ map (nil if absent).
func (f *File) Metadata() map[string]string {
	if f.h.meta == nil {
		return nil
	}
	m := make(map[string]string, len(f.h.meta))
	for k, v := range f.h.meta {
		m[k] = v
	}
	return m
}

// Bytes returns the named tensor's raw little-endian data as a read-only view
// of the mapping: no copy is made. Writing to the slice faults. The slice is
// valid until Close.
func (f *File) Bytes(name string) ([]byte, error) {
	if f.unmap == nil {
		return nil, ErrClosed
	}
	in, ok := f.h.infos[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q in %s", ErrNotFound, name, f.path)
	}
	if !in.DType.Supported() {
		return nil, fmt.Errorf("%w %s of tensor %q in %s", ErrUnsupportedDType, in.DType, name, f.path)
	}
	return f.data[in.Offset : in.Offset+in.Size : in.Offset+in.Size], nil
}

// Close unmaps the file. Slices returned by Bytes must not be used afterwards.
func (f *File) Close() error {
	if f.unmap == nil {
		return ErrClosed
	}
	err := f.unmap()
	f.unmap, f.data = nil, nil
	if err != nil {
		return fmt.Errorf("safetensors: unmap %s: %w", f.path, err)
	}
	return nil
}
