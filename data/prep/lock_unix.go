//go:build unix

package prep

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on the directory out (flock), so that two
// runs preparing the same out_dir take turns; the second then finds the
// first's output up to date. It returns the function that releases it.
func lockDir(out string, progress io.Writer) (func(), error) {
	f, err := os.Open(out)
	if err != nil {
		return nil, fmt.Errorf("prep: %w", err)
	}
	fd := int(f.Fd())
	err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		if progress != nil {
			fmt.Fprintf(progress, "prep: waiting for another prep of %s to finish\n", out)
		}
		err = syscall.Flock(fd, syscall.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("prep: lock %s: %w", out, err)
	}
	return func() { f.Close() }, nil // closing the descriptor releases the lock
}
