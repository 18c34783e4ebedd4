package tensorboard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// The decoder below is written for the tests, independently of writer.go: TFRecord framing with both CRCs
// checked, and just enough protobuf wire format to read the events the writer produces.

var testCRCTable = crc32.MakeTable(0x82f63b78) // CRC-32C, reversed polynomial

// testMask is TFRecord's masking of a CRC: rotate right by 15, add a constant.
func testMask(c uint32) uint32 { return bits.RotateLeft32(c, -15) + 0xa282ead8 }

// decodeRecords returns the complete records of b, failing the test on a bad CRC. rest is the number of
// trailing bytes that do not form a complete record (a truncated last record).
func decodeRecords(t *testing.T, b []byte) (recs [][]byte, rest int) {
	t.Helper()
	for off := 0; off < len(b); {
		if len(b)-off < 12 {
			return recs, len(b) - off
		}
		hdr := b[off : off+8]
		n := binary.LittleEndian.Uint64(hdr)
		if got, want := binary.LittleEndian.Uint32(b[off+8:]), testMask(crc32.Checksum(hdr, testCRCTable)); got != want {
			t.Fatalf("record at offset %d: length CRC %#x, want %#x", off, got, want)
		}
		if uint64(len(b)-off-12) < n+4 {
			return recs, len(b) - off
		}
		data := b[off+12 : off+12+int(n)]
		if got, want := binary.LittleEndian.Uint32(b[off+12+int(n):]), testMask(crc32.Checksum(data, testCRCTable)); got != want {
			t.Fatalf("record at offset %d: data CRC %#x, want %#x", off, got, want)
		}
		recs = append(recs, data)
		off += 12 + int(n) + 4
	}
	return recs, 0
}

// field is one protobuf field: a varint, a fixed32/fixed64 (in u), or length-delimited bytes.
type field struct {
	num int
	typ int // wire type: 0 varint, 1 fixed64, 2 bytes, 5 fixed32
	u   uint64
	b   []byte
}

func testVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("bad varint")
}

func decodeFields(b []byte) ([]field, error) {
	var fs []field
	for len(b) > 0 {
		key, n, err := testVarint(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		f := field{num: int(key >> 3), typ: int(key & 7)}
		switch f.typ {
		case 0:
			if f.u, n, err = testVarint(b); err != nil {
				return nil, err
			}
		case 1:
			if len(b) < 8 {
				return nil, errors.New("short fixed64")
			}
			f.u, n = binary.LittleEndian.Uint64(b), 8
		case 5:
			if len(b) < 4 {
				return nil, errors.New("short fixed32")
			}
			f.u, n = uint64(binary.LittleEndian.Uint32(b)), 4
		case 2:
			l, m, err := testVarint(b)
			if err != nil || uint64(len(b)-m) < l {
				return nil, errors.New("bad length")
			}
			f.b, n = b[m:m+int(l)], m+int(l)
		default:
			return nil, fmt.Errorf("wire type %d", f.typ)
		}
		b = b[n:]
		fs = append(fs, f)
	}
	return fs, nil
}

// event is a decoded tensorboard.Event: exactly one of fileVersion, sessionStatus (>0) or tag is set.
type event struct {
	wall          float64
	step          int64
	fileVersion   string
	sessionStatus int
	tag           string
	value         uint32 // float32 bits of simple_value
}

func decodeEvent(t *testing.T, data []byte) event {
	t.Helper()
	fs, err := decodeFields(data)
	if err != nil {
		t.Fatalf("event: %v", err)
	}
	var ev event
	for _, f := range fs {
		switch {
		case f.num == 1 && f.typ == 1:
			ev.wall = math.Float64frombits(f.u)
		case f.num == 2 && f.typ == 0:
			ev.step = int64(f.u)
		case f.num == 3 && f.typ == 2:
			ev.fileVersion = string(f.b)
		case f.num == 7 && f.typ == 2:
			log, err := decodeFields(f.b)
			if err != nil || len(log) != 1 || log[0].num != 1 || log[0].typ != 0 {
				t.Fatalf("session_log %x: %v", f.b, err)
			}
			ev.sessionStatus = int(log[0].u)
		case f.num == 5 && f.typ == 2:
			sum, err := decodeFields(f.b)
			if err != nil || len(sum) != 1 || sum[0].num != 1 || sum[0].typ != 2 {
				t.Fatalf("summary %x: %v", f.b, err)
			}
			val, err := decodeFields(sum[0].b)
			if err != nil || len(val) != 2 || val[0].num != 1 || val[0].typ != 2 || val[1].num != 2 || val[1].typ != 5 {
				t.Fatalf("summary value %x: %v", sum[0].b, err)
			}
			ev.tag, ev.value = string(val[0].b), uint32(val[1].u)
		default:
			t.Fatalf("event: unexpected field %d (wire type %d)", f.num, f.typ)
		}
	}
	return ev
}

// readEvents decodes every complete record of the file at path.
func readEvents(t *testing.T, path string) (evs []event, rest int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, rest := decodeRecords(t, b)
	for _, r := range recs {
		evs = append(evs, decodeEvent(t, r))
	}
	return evs, rest
}

type point struct {
	tag   string
	step  int64
	value float64
	wall  time.Time
}

// samePoint reports whether ev holds p, comparing values as float32 bits (NaN included).
func samePoint(ev event, p point) bool {
	wall := float64(p.wall.UnixNano()) / 1e9
	return ev.tag == p.tag && ev.step == p.step && ev.value == math.Float32bits(float32(p.value)) &&
		math.Abs(ev.wall-wall) < 1e-6 && ev.fileVersion == "" && ev.sessionStatus == 0
}

// checkHeader checks a file's first two events: the file version, and a SessionLog START at firstStep.
func checkHeader(t *testing.T, evs []event, firstStep int64, since time.Time) {
	t.Helper()
	if len(evs) < 2 {
		t.Fatalf("%d events, want at least the 2 of the header", len(evs))
	}
	now := float64(time.Now().UnixNano()) / 1e9
	for i, ev := range evs[:2] {
		if ev.wall < float64(since.Unix())-1 || ev.wall > now+1 {
			t.Errorf("header event %d: wall_time %f, want between %d and %f", i, ev.wall, since.Unix(), now)
		}
	}
	if evs[0].fileVersion != "brain.Event:2" || evs[0].step != 0 || evs[0].tag != "" {
		t.Errorf("first event %+v, want file_version brain.Event:2 at step 0", evs[0])
	}
	if evs[1].sessionStatus != 1 || evs[1].step != firstStep || evs[1].tag != "" {
		t.Errorf("second event %+v, want session_log START (1) at step %d", evs[1], firstStep)
	}
}

var testPoints = func() []point {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	return []point{
		{"train/loss", 1, 2.5, t0},
		{"train/lr", 1, 1e-4, t0},
		{"train/loss", 2, math.NaN(), t0.Add(1500 * time.Millisecond)},
		{"train/grad_norm", 2, math.Inf(1), t0.Add(2 * time.Second)},
		{"train/grad_norm", 3, math.Inf(-1), t0.Add(3 * time.Second)},
		{"train/loss", 3, math.Copysign(0, -1), t0.Add(3 * time.Second)},
		{"eval/loss ü/日本", 3, 1e40, t0.Add(4 * time.Second)}, // beyond float32: +Inf
		{"train/tokens", 1 << 40, 123456789, t0.Add(5 * time.Second)},
		{"train/neg", -7, -0.1, time.Unix(-1, 500_000_000)},
	}
}()

func writePoints(t *testing.T, w *Writer, ps []point) {
	t.Helper()
	for _, p := range ps {
		if err := w.Scalar(p.tag, p.step, p.value, p.wall); err != nil {
			t.Fatalf("Scalar(%q, %d): %v", p.tag, p.step, err)
		}
	}
}

func checkPoints(t *testing.T, evs []event, ps []point) {
	t.Helper()
	if len(evs) != len(ps) {
		t.Fatalf("%d scalar events, want %d", len(evs), len(ps))
	}
	for i, p := range ps {
		if !samePoint(evs[i], p) {
			t.Errorf("event %d: %+v, want %+v", i, evs[i], p)
		}
	}
}

var fileName = regexp.MustCompile(`^events\.out\.tfevents\.\d{10}\.[^/]+\.\d+\.\d+$`)

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tensorboard") // created by NewWriter
	start := time.Now()
	w, err := NewWriter(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !fileName.MatchString(filepath.Base(w.Path())) || filepath.Dir(w.Path()) != dir {
		t.Errorf("file %s, want %s/events.out.tfevents.<secs>.<host>.<pid>.<n>", w.Path(), dir)
	}
	writePoints(t, w, testPoints[:4])
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	writePoints(t, w, testPoints[4:])
	// Buffered until Flush or Close.
	if evs, _ := readEvents(t, w.Path()); len(evs) != 2+4 {
		t.Errorf("%d events before Close, want the 6 flushed", len(evs))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	evs, rest := readEvents(t, w.Path())
	if rest != 0 {
		t.Errorf("%d trailing bytes", rest)
	}
	checkHeader(t, evs, 0, start)
	checkPoints(t, evs[2:], testPoints)
}

// A crash (no Close) mid-record leaves every complete record readable.
func TestTruncated(t *testing.T) {
	w, err := NewWriter(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writePoints(t, w, testPoints)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	// Record boundaries, from the full file.
	recs, _ := decodeRecords(t, whole)
	var ends []int
	end := 0
	for _, r := range recs {
		end += 12 + len(r) + 4
		ends = append(ends, end)
	}
	cut := filepath.Join(t.TempDir(), "events.out.tfevents.cut")
	for size := 0; size <= len(whole); size++ {
		complete := 0
		for complete < len(ends) && ends[complete] <= size {
			complete++
		}
		if err := os.WriteFile(cut, whole[:size], 0o644); err != nil {
			t.Fatal(err)
		}
		evs, rest := readEvents(t, cut)
		if len(evs) != complete || (complete > 0 && rest != size-ends[complete-1]) {
			t.Fatalf("cut at %d: %d events and %d trailing bytes, want %d events", size, len(evs), rest, complete)
		}
		if complete == len(ends) {
			checkPoints(t, evs[2:], testPoints)
		}
	}
}

func TestBadTag(t *testing.T) {
	w, err := NewWriter(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, tag string }{{"empty", ""}, {"invalid UTF-8", "loss\xff"}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := w.Scalar(tc.tag, 1, 1, time.Time{}); !errors.Is(err, ErrBadTag) {
				t.Errorf("Scalar(%q): %v, want ErrBadTag", tc.tag, err)
			}
		})
	}
	// A rejected tag writes nothing and leaves the writer usable.
	writePoints(t, w, testPoints[:1])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	evs, _ := readEvents(t, w.Path())
	checkPoints(t, evs[2:], testPoints[:1])
}

func TestClosed(t *testing.T) {
	w, err := NewWriter(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Scalar("loss", 1, 1, time.Time{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Scalar after Close: %v, want ErrClosed", err)
	}
	if err := w.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close: %v, want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A resumed run writes a new file, even in the same second and process, starting with a SessionLog START at
// the first step it logs again; the names sort in creation order.
func TestResumeNewFile(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	w1, err := NewWriter(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	writePoints(t, w1, testPoints[:4])
	if err := w1.Flush(); err != nil { // crashed: no Close
		t.Fatal(err)
	}
	w2, err := NewWriter(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	writePoints(t, w2, testPoints[2:])
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	w1.Close()

	names, err := filepath.Glob(filepath.Join(dir, "*tfevents*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != w1.Path() || names[1] != w2.Path() {
		t.Fatalf("files %q, want %q then %q", names, w1.Path(), w2.Path())
	}
	evs, _ := readEvents(t, w1.Path())
	checkHeader(t, evs, 0, start)
	checkPoints(t, evs[2:], testPoints[:4])
	evs, _ = readEvents(t, w2.Path())
	checkHeader(t, evs, 2, start)
	checkPoints(t, evs[2:], testPoints[2:])
}

// The test decoder's CRC against the published CRC-32C check value, CRC-32C("123456789") = 0xe3069283, and
// its mask, whose value at 0 is the constant 0xa282ead8.
func TestDecoderCRC(t *testing.T) {
	if got := crc32.Checksum([]byte("123456789"), testCRCTable); got != 0xe3069283 {
		t.Errorf("CRC-32C check value %#x, want 0xe3069283", got)
	}
	if got := testMask(0); got != 0xa282ead8 {
		t.Errorf("mask(0) = %#x", got)
	}
}
