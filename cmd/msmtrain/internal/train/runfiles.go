package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Files of a run directory are never written through a symbolic link: a link left in RUN (metrics.jsonl pointing
// at another run's log, a summary.json pointing at a shared file) would otherwise make msmtrain write outside the
// run. A link as the last component of a path is refused, with the path; links to directories (a checkpoints/
// on a scratch disk, out_dir itself) are honoured, as they are made on purpose and point at directories that the
// run fills with its own files.

// SymlinkError is returned for a run file that is a symbolic link.
type SymlinkError struct {
	Path string
}

func (e *SymlinkError) Error() string {
	return fmt.Sprintf("%s is a symbolic link: msmtrain does not write run files through links (remove the link, or use another out_dir)", e.Path)
}

// OpenRunFile is os.OpenFile that refuses a symbolic link as the file (O_NOFOLLOW) with a SymlinkError.
func OpenRunFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
	if errors.Is(err, syscall.ELOOP) {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return nil, &SymlinkError{path}
		}
	}
	return f, err
}

// WriteFileAtomic replaces the run file path with b (a temporary file, fsync, rename, fsync of the directory),
// refusing a path that is a symbolic link rather than replacing the link.
func WriteFileAtomic(path string, b []byte) error {
	return writeFileAtomic(path, b)
}

// notSymlink returns a SymlinkError when path exists as a symbolic link.
func notSymlink(path string) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return &SymlinkError{path}
	}
	return nil
}

// checkRunLinks refuses, before any work, a run whose files are symbolic links: the writers refuse them too, but
// only when they come to write, which for summary.json is after the last stage.
func (c *Config) checkRunLinks() error {
	paths := []string{"config.toml", "metrics.jsonl", "summary.json"}
	for _, st := range c.Stages {
		paths = append(paths, filepath.Join(st.Name, "summary.json"), filepath.Join(st.Name, "DONE"),
			filepath.Join(st.Name, dataRecordName))
	}
	for _, p := range paths {
		if err := notSymlink(filepath.Join(c.OutDir, p)); err != nil {
			return err
		}
	}
	return nil
}
