package rundir

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/msmtrain/msmtrain/data/atomicfile"
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

// OpenFile is os.OpenFile that refuses a symbolic link as the file (O_NOFOLLOW) with a SymlinkError.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
	if errors.Is(err, syscall.ELOOP) {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return nil, &SymlinkError{path}
		}
	}
	return f, err
}

// NotSymlink returns a SymlinkError when path exists as a symbolic link.
func NotSymlink(path string) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return &SymlinkError{path}
	}
	return nil
}

// WriteFile replaces the run file path with b atomically and durably (data/atomicfile), refusing a path that is
// a symbolic link rather than replacing the link.
func WriteFile(path string, b []byte) error {
	if err := NotSymlink(path); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b)
}

// WriteJSON writes v as indented JSON with WriteFile.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFile(path, append(b, '\n'))
}

// MetricsLog appends records to metrics.jsonl.
type MetricsLog struct {
	f *os.File
}

// OpenMetrics opens metrics.jsonl for appending the records of stage from step on, first dropping the lines of
// stage beyond step: those were written by a run that died after its last checkpoint and will be produced again.
// A stage starting at step 0 has no lines yet: any found are of an attempt started over (--restart-stage) and go
// too. Lines of other stages stay.
func OpenMetrics(path, stage string, step int) (*MetricsLog, error) {
	if b, err := os.ReadFile(path); err == nil {
		var keep bytes.Buffer
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<26)
		for sc.Scan() {
			line := sc.Bytes()
			var r struct {
				Stage string `json:"stage"`
				Step  int    `json:"step"`
			}
			if json.Unmarshal(line, &r) == nil && r.Stage == stage && (r.Step > step || step == 0) {
				continue
			}
			keep.Write(line)
			keep.WriteByte('\n')
		}
		if keep.Len() != len(b) {
			if err := WriteFile(path, keep.Bytes()); err != nil {
				return nil, err
			}
		}
	}
	f, err := OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &MetricsLog{f}, nil
}

// Write appends one record (a TrainRecord or an EvalRecord) as a line. A nil log writes nothing.
func (m *MetricsLog) Write(rec any) error {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = m.f.Write(append(b, '\n'))
	return err
}

// Close closes the log; a nil log is a no-op.
func (m *MetricsLog) Close() error {
	if m == nil {
		return nil
	}
	return m.f.Close()
}
