package torch

/*
#cgo CFLAGS: -I${SRCDIR}/csrc
#cgo LDFLAGS: -L${SRCDIR}/../build -Wl,-rpath,$ORIGIN/build -Wl,-rpath,$ORIGIN -Wl,-rpath,${SRCDIR}/../build -lmsmtorch
#include <stdlib.h>
#include "msmtorch.h"
*/
import "C"

import (
	"errors"
	"strings"
	"unsafe"
)

// Error is a libtorch failure: the op that failed and libtorch's message.
type Error struct {
	Op  string
	Msg string
}

func (e *Error) Error() string { return "torch: " + e.Op + ": " + e.Msg }

// ErrOutOfMemory is matched (errors.Is) by an Error whose message reports that a device ran out of memory.
var ErrOutOfMemory = errors.New("torch: out of memory")

func (e *Error) Is(target error) bool {
	return target == ErrOutOfMemory && strings.Contains(strings.ToLower(e.Msg), "out of memory")
}

// check turns a message returned by the shim into an error, freeing it.
func check(op string, msg *C.char) error {
	if msg == nil {
		return nil
	}
	s := C.GoString(msg)
	C.msm_free_str(msg)
	return &Error{Op: op, Msg: s}
}

func cstr(s string) (*C.char, func()) {
	p := C.CString(s)
	return p, func() { C.free(unsafe.Pointer(p)) }
}
