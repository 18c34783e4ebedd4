package train

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
)

// lockName is the lock file of a run directory.
const lockName = ".lock"

// RunLock is an exclusive lock on a run directory, held by the one process that writes it: rank 0 of a training
// run (the other ranks only read the directory), or msmtrain prep on a training config. A second process that
// tries to train the same out_dir gets an error naming the directory and the holder, instead of both logging
// every step.
//
// It is flock(2) on RUN/.lock: the kernel drops the lock when the holder exits however it exits (SIGKILL, OOM
// kill, node reboot for local disks), so a stale lock never blocks a later run, and the file is never deleted (a
// deleted lock file would let two processes lock two different files). The file records the holder's pid, host
// and start time for the message; its content says nothing about whether the lock is held.
//
// On NFS, Linux emulates flock with NFS byte-range locks (NFSv4, or NFSv3 with the lock manager), which hold
// across clients; a mount with "nolock" or "local_lock=flock" makes them local to each node, and a lock held
// from a node that died is released only when the server's lease expires (a minute or so on NFSv4). A file
// system without lock support (some FUSE or Lustre mounts without -o flock) gets a warning and no lock.
type RunLock struct {
	f *os.File
}

// LockRun takes the lock of the run directory dir (which must exist). warn receives a line when the file system
// does not support locks; the run then goes on unlocked.
func LockRun(dir string, warn io.Writer) (*RunLock, error) {
	path := filepath.Join(dir, lockName)
	f, err := rundir.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: locking the run directory %s: %w", dir, err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
	case errors.Is(err, syscall.EWOULDBLOCK):
		holder, _ := io.ReadAll(io.LimitReader(f, 4096))
		f.Close()
		who := strings.TrimSpace(string(holder))
		if who == "" {
			who = "a process that has not yet written its pid"
		}
		return nil, fmt.Errorf("train: the run directory %s is in use by %s (lock %s): wait for it to end, or use another out_dir",
			dir, who, path)
	case errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS):
		f.Close()
		if warn != nil {
			fmt.Fprintf(warn, "msmtrain: warning: %s: file locks are not supported here (%v); nothing stops a second run from writing %s at the same time\n",
				path, err, dir)
		}
		return &RunLock{}, nil
	default:
		f.Close()
		return nil, fmt.Errorf("train: locking the run directory %s: %w", dir, err)
	}
	host, _ := os.Hostname()
	who := fmt.Sprintf("pid %d on host %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(who), 0) // for the message of a second process only
	}
	return &RunLock{f: f}, nil
}

// Close releases the lock; nil and unlocked locks are no-ops.
func (l *RunLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the only descriptor releases the flock
	l.f = nil
	return err
}
