// Package atomicfile writes files and directories so that a crash at any
// point leaves either the old version or the new one, complete, never a torn
// file: the data goes to a temporary name beside the destination, is synced,
// renamed over the destination, and the directory is synced so the rename
// itself survives a power loss.
//
// Every writer of the project's durable files uses it: shards and manifests,
// safetensors files, checkpoints, stage outputs, run records and reports. It
// lives under data/ because it must be importable from both data/ and torch/
// (it is pure Go and imports nothing of the project).
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is a file being written under a temporary name in the directory of
// its destination. Commit publishes it; Abort discards it.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts writing the file that Commit will publish at path.
func Create(path string) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// Path returns the destination.
func (f *File) Path() string { return f.path }

// Commit makes the file durable and renames it into place: mode 0644, fsync,
// close, rename, fsync of the directory. On failure the temporary file is
// removed and the destination is left as it was.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("atomicfile: %s: already committed or aborted", f.path)
	}
	f.done = true
	err := f.Chmod(0o644)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort discards the file. It is a no-op after Commit or Abort.
func (f *File) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	return errors.Join(f.Close(), os.Remove(f.Name()))
}

// WriteFile replaces path with data atomically and durably (see Commit).
func WriteFile(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit()
}

// CopyFile replaces dst with a copy of src atomically and durably (see Commit), streaming it.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := Create(dst)
	if err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Abort()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Commit()
}

// SyncDir fsyncs a directory, making the renames and creations in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// TempDir makes a temporary directory beside dst for building what
// PublishDir then moves to dst.
func TempDir(dst string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
}

// PublishDir moves the directory tmp, whose files are complete, to dst,
// replacing a directory already there. tmp and its files are synced first.
// A crash leaves dst as it was, or the new dst, or (between the two renames
// of a replacement) no dst and the old one at dst+".old", which the next
// PublishDir removes: a reader that requires dst sees the write as not done.
func PublishDir(tmp, dst string) error {
	if err := syncTree(tmp); err != nil {
		return err
	}
	old := dst + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		if err := os.Rename(dst, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	if err := SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// syncTree fsyncs every regular file and directory under dir.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("syncing %s: %w", p, err)
		}
		return nil
	})
}
