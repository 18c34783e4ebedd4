package shard

import (
	"errors"
	"fmt"
)

// Sentinel errors; the errors returned by this package wrap one of them, so
// callers branch with errors.Is.
var (
	ErrBadMagic  = errors.New("shard: bad magic")
	ErrVersion   = errors.New("shard: unsupported format version")
	ErrTruncated = errors.New("shard: truncated file")
	ErrCorrupt   = errors.New("shard: corrupt file")
	ErrChecksum  = errors.New("shard: checksum mismatch")
	ErrRange     = errors.New("shard: index out of range")
	// ErrTokenizer reports a dataset prepared with another tokenizer.
	ErrTokenizer = errors.New("shard: tokenizer mismatch")
	// ErrManifest reports a manifest that disagrees with its shards.
	ErrManifest = errors.New("shard: bad manifest")
)

// hint is appended to errors about damaged or foreign files.
const hint = "HINT: re-run `msmtrain prep` to rebuild the dataset"

// FormatError describes a damaged or foreign shard file: which file, at what
// byte offset, and which kind of damage (Err, one of the sentinels above).
type FormatError struct {
	File   string
	Offset int64
	Err    error
	Detail string
}

func (e *FormatError) Error() string {
	msg := e.Err.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return fmt.Sprintf("%s in %s at offset %d (%s)", msg, e.File, e.Offset, hint)
}

// Unwrap returns the sentinel error.
func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(file string, off int64, err error, format string, args ...any) error {
	return &FormatError{File: file, Offset: off, Err: err, Detail: fmt.Sprintf(format, args...)}
}
