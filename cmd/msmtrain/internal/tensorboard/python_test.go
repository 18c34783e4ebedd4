package tensorboard

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/msmtrain/msmtrain/torch/testenv"
)

// protobufPython is the first of $MSMTRAIN_PYTHON, python3 (PATH) and /usr/bin/python3 (where Debian's
// python3-protobuf goes) that can import google.protobuf, or "".
var protobufPython = sync.OnceValue(func() string {
	for _, py := range []string{os.Getenv("MSMTRAIN_PYTHON"), "python3", "/usr/bin/python3"} {
		if py != "" && exec.Command(py, "-c", "from google.protobuf import descriptor_pb2, message_factory").Run() == nil {
			return py
		}
	}
	return ""
})

type pyEvent struct {
	WallTime    float64 `json:"wall_time"`
	Step        int64   `json:"step"`
	Kind        string  `json:"kind"`
	FileVersion string  `json:"file_version"`
	Status      int     `json:"status"`
	Tag         string  `json:"tag"`
	Value       string  `json:"value"` // Python's repr: "nan", "inf", "-0.0", ...
	ValueBits   uint32  `json:"value_bits"`
}

// TestPythonProtobuf reads the files of a crashed and a resumed run with Python's protobuf
// (testdata/read_events.py), which checks the CRCs on its own.
func TestPythonProtobuf(t *testing.T) {
	py := protobufPython()
	if py == "" {
		testenv.SkipOrFail(t, "python3 with google.protobuf not found: apt-get install python3-protobuf (or pip install protobuf, or set MSMTRAIN_PYTHON)")
	}
	dir := t.TempDir()
	start := time.Now()
	w1, err := NewWriter(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	writePoints(t, w1, testPoints[:4])
	if err := w1.Close(); err != nil {
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

	out, err := exec.Command(py, filepath.Join("testdata", "read_events.py"), w1.Path(), w2.Path()).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("read_events.py: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var files []struct {
		Path   string    `json:"path"`
		Events []pyEvent `json:"events"`
	}
	if err := json.Unmarshal(out, &files); err != nil {
		t.Fatalf("read_events.py output: %v\n%s", err, out)
	}
	if len(files) != 2 {
		t.Fatalf("read_events.py read %d files, want 2", len(files))
	}
	for i, want := range []struct {
		firstStep int64
		points    []point
	}{{0, testPoints[:4]}, {2, testPoints[2:]}} {
		evs := files[i].Events
		if len(evs) != 2+len(want.points) {
			t.Fatalf("%s: %d events, want %d", files[i].Path, len(evs), 2+len(want.points))
		}
		if e := evs[0]; e.Kind != "file_version" || e.FileVersion != "brain.Event:2" || e.Step != 0 || e.WallTime < float64(start.Unix())-1 {
			t.Errorf("%s: first event %+v, want file_version brain.Event:2 at step 0, now", files[i].Path, e)
		}
		if e := evs[1]; e.Kind != "session_log" || e.Status != 1 || e.Step != want.firstStep {
			t.Errorf("%s: second event %+v, want session_log START (1) at step %d", files[i].Path, e, want.firstStep)
		}
		for j, p := range want.points {
			e := evs[2+j]
			v := float32(p.value)
			parsed, err := strconv.ParseFloat(e.Value, 64) // Go reads Python's "nan", "inf", "-inf" too
			sameValue := err == nil && parsed == float64(v) && e.ValueBits == math.Float32bits(v)
			if math.IsNaN(float64(v)) {
				sameValue = err == nil && math.IsNaN(parsed) // Python may not keep a NaN's payload bits
			}
			wall := float64(p.wall.UnixNano()) / 1e9
			if e.Kind != "summary" || e.Tag != p.tag || e.Step != p.step || !sameValue || math.Abs(e.WallTime-wall) > 1e-6 {
				t.Errorf("%s: event %d: %+v, want tag %q step %d value %v (bits %#x) wall %f",
					files[i].Path, 2+j, e, p.tag, p.step, v, math.Float32bits(v), wall)
			}
		}
	}
}
