package tensorboard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// FileVersion is the file_version of the first event of every file.
const FileVersion = "brain.Event:2"

// Field numbers of tensorboard.Event, SessionLog, Summary and Summary.Value (see the package doc).
const (
	eventWallTime    protowire.Number = 1
	eventStep        protowire.Number = 2
	eventFileVersion protowire.Number = 3
	eventSummary     protowire.Number = 5
	eventSessionLog  protowire.Number = 7
	sessionLogStatus protowire.Number = 1
	sessionLogStart                   = 1 // SessionLog.SessionStatus START
	summaryValue     protowire.Number = 1
	valueTag         protowire.Number = 1
	valueSimpleValue protowire.Number = 2
)

var (
	// ErrClosed is returned by a Writer's methods after Close.
	ErrClosed = errors.New("tensorboard: writer closed")
	// ErrBadTag is returned by Scalar for an empty tag or one that is not valid UTF-8.
	ErrBadTag = errors.New("tensorboard: bad tag")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Writer appends scalar events to one event file. Scalar buffers in memory; Flush writes the buffer and syncs
// the file, so call it at each logging interval (and before a checkpoint). Its methods may be called from several
// goroutines. After a failed write every method returns that error: the file then ends at the last complete
// Flush, or in a truncated record that readers skip.
type Writer struct {
	mu     sync.Mutex
	f      *os.File
	path   string
	buf    []byte // complete records not yet written
	err    error  // sticky write error
	closed bool
}

// NewWriter creates a new event file in dir (creating dir if needed) and writes, and syncs, its first events:
// the file version and a SessionLog START at firstStep. firstStep is the lowest step this writer will log: the
// first step of a new run, the step after the checkpoint for a resumed one. TensorBoard then hides the points that the
// directory's earlier files hold at firstStep or later, which the resumed run replays.
func NewWriter(dir string, firstStep int64) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	now := time.Now()
	// O_EXCL: never append to another writer's file, even one started in the same second by the same pid.
	var f *os.File
	for n := 0; ; n++ {
		name := fmt.Sprintf("events.out.tfevents.%d.%s.%d.%d", now.Unix(), host, os.Getpid(), n)
		f, err = os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
		if !errors.Is(err, fs.ErrExist) || n == 1000 {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	w := &Writer{f: f, path: f.Name()}
	ev := appendEventHeader(nil, now, 0)
	ev = protowire.AppendTag(ev, eventFileVersion, protowire.BytesType)
	ev = protowire.AppendString(ev, FileVersion)
	w.buf = appendRecord(w.buf, ev)

	var log []byte
	log = protowire.AppendTag(log, sessionLogStatus, protowire.VarintType)
	log = protowire.AppendVarint(log, sessionLogStart)
	ev = appendEventHeader(ev[:0], now, firstStep)
	ev = protowire.AppendTag(ev, eventSessionLog, protowire.BytesType)
	ev = protowire.AppendBytes(ev, log)
	w.buf = appendRecord(w.buf, ev)

	if err := w.Flush(); err != nil {
		f.Close()
		os.Remove(w.path)
		return nil, err
	}
	// Make the new file's directory entry durable too.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return w, nil
}

// Path returns the event file's path.
func (w *Writer) Path() string { return w.path }

// Scalar buffers one value of the series tag at step. The value is stored as a float32; NaN and ±Inf are kept.
// A zero wall time means now. Steps of a tag should increase: TensorBoard takes a step that does not as a
// restart and hides the tag's points from that step on.
func (w *Writer) Scalar(tag string, step int64, value float64, wall time.Time) error {
	if tag == "" {
		return fmt.Errorf("%w: empty tag", ErrBadTag)
	}
	if !utf8.ValidString(tag) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrBadTag, tag)
	}
	if wall.IsZero() {
		wall = time.Now()
	}
	var v []byte
	v = protowire.AppendTag(v, valueTag, protowire.BytesType)
	v = protowire.AppendString(v, tag)
	v = protowire.AppendTag(v, valueSimpleValue, protowire.Fixed32Type)
	v = protowire.AppendFixed32(v, math.Float32bits(float32(value)))
	var sum []byte
	sum = protowire.AppendTag(sum, summaryValue, protowire.BytesType)
	sum = protowire.AppendBytes(sum, v)
	ev := appendEventHeader(nil, wall, step)
	ev = protowire.AppendTag(ev, eventSummary, protowire.BytesType)
	ev = protowire.AppendBytes(ev, sum)

	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	w.buf = appendRecord(w.buf, ev)
	return nil
}

// Flush writes the buffered events and syncs the file.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	return w.flush()
}

// Close flushes and closes the file. Closing a closed Writer does nothing.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.err
	if err == nil {
		err = w.flush()
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("tensorboard: %w", cerr)
	}
	return err
}

// usable returns why w cannot take more events, or nil. The caller holds w.mu.
func (w *Writer) usable() error {
	if w.closed {
		return ErrClosed
	}
	return w.err
}

// flush writes w.buf in one write and syncs. The caller holds w.mu.
func (w *Writer) flush() error {
	if len(w.buf) > 0 {
		if _, err := w.f.Write(w.buf); err != nil {
			w.err = fmt.Errorf("tensorboard: %w", err)
			return w.err
		}
		w.buf = w.buf[:0]
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("tensorboard: %w", err)
		return w.err
	}
	return nil
}

// appendEventHeader appends an Event's wall_time (seconds since the epoch) and step.
func appendEventHeader(b []byte, wall time.Time, step int64) []byte {
	secs := float64(wall.Unix()) + float64(wall.Nanosecond())/1e9
	b = protowire.AppendTag(b, eventWallTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(secs))
	b = protowire.AppendTag(b, eventStep, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(step))
}

// appendRecord appends data framed as a TFRecord.
func appendRecord(b, data []byte) []byte {
	n := len(b)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(data)))
	b = binary.LittleEndian.AppendUint32(b, maskedCRC(b[n:]))
	b = append(b, data...)
	return binary.LittleEndian.AppendUint32(b, maskedCRC(data))
}

// maskedCRC is TFRecord's masked CRC-32C.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}
