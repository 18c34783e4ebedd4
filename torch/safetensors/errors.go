package safetensors

import (
	"errors"
	"fmt"
)

// HeaderError reports a malformed or inconsistent safetensors header, or an
// inconsistent sharded index.
type HeaderError struct {
	File   string // the file being read
	Reason string // what is wrong, naming the tensor or offset where it applies
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("safetensors: %s: %s", e.File, e.Reason)
}

func headerErr(file, format string, args ...any) error {
	return &HeaderError{File: file, Reason: fmt.Sprintf(format, args...)}
}

var (
	// ErrUnsupportedDType is wrapped by errors about element types that the
	// format defines but this package does not read or write.
	ErrUnsupportedDType = errors.New("safetensors: unsupported dtype")
	// ErrNotFound is wrapped by errors about a tensor name that is absent.
	ErrNotFound = errors.New("safetensors: tensor not found")
	// ErrClosed is returned by reads after Close.
	ErrClosed = errors.New("safetensors: file already closed")
)
