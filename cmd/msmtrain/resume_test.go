package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/dist"
)

// TestLoRADropoutExactResume: a real transformer with a LoRA adapter and dropout, stopped in the middle of each
// stage and resumed, produces the per-step metrics and the final adapter of an uninterrupted run bit for bit (the
// checkpoint carries the dropout generator's state; each stage starts it from a seed).
func TestLoRADropoutExactResume(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	docs, chats := writeTrainingData(t, dir, 30)
	config := func(out string) *train.Config {
		text := fmt.Sprintf(`out_dir = %q
[model]
path = %q
[lora]
enabled = true
r = 4
alpha = 8
dropout = 0.2
targets = ["q_proj", "v_proj", "up_proj"]
[train]
seq_len = 48
micro_batch = 2
steps = 6
lr = 1e-2
[checkpoint]
every = 1000
[log]
progress = "lines"
[[stages]]
name = "msm"
kind = "msm"
[stages.data]
sources = [{ name = "docs", path = %q, kind = "documents" }]
[[stages]]
name = "aft"
kind = "aft"
[stages.data]
sources = [{ name = "chats", path = %q, kind = "chats" }]
`, out, model, docs, chats)
		c, err := train.Parse([]byte(text), "resume.toml", nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	run := func(c *train.Config, stopAfter int) error {
		return train.Run(context.Background(), c, train.Env{Out: io.Discard, Err: io.Discard, Dist: dist.Env{World: 1},
			Device: torch.CPU, Build: func(c *train.Config, d torch.Device) (train.Model, error) { return buildModel(c, d, nil) },
			StopAfter: stopAfter})
	}
	ref := filepath.Join(dir, "ref")
	if err := run(config(ref), 0); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "resumed")
	stops := 0
	for {
		err := run(config(out), 4) // stops at step 4 of msm, then at step 2 of aft (4 steps later), then finishes
		if errors.Is(err, train.ErrStopped) {
			stops++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if stops < 2 {
		t.Fatalf("stopped %d times, want a stop in each stage", stops)
	}
	a, b := metricLines(t, filepath.Join(ref, "metrics.jsonl")), metricLines(t, filepath.Join(out, "metrics.jsonl"))
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d vs %d metric lines", len(a), len(b))
	}
	for i := range a {
		if a[i].exact != b[i].exact || a[i].gradNorm != b[i].gradNorm {
			t.Fatalf("line %d differs:\n  %s %.17g\n  %s %.17g", i, a[i].exact, a[i].gradNorm, b[i].exact, b[i].gradNorm)
		}
	}
	wa, err := torch.LoadFile(filepath.Join(ref, "aft", "output", "adapter_model.safetensors"), torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	wb, err := torch.LoadFile(filepath.Join(out, "aft", "output", "adapter_model.safetensors"), torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	for k, x := range wa {
		xa, _ := x.Float32s()
		xb, err := wb[k].Float32s()
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		for i := range xa {
			if xa[i] != xb[i] {
				t.Fatalf("final adapter %s[%d]: %g vs %g", k, i, xa[i], xb[i])
			}
		}
	}
}

type metricLine struct {
	exact    string // every field but time, speed and the gradient norm, as JSON
	gradNorm float64
}

// metricLines reads metrics.jsonl.
func metricLines(t *testing.T, path string) []metricLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []metricLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		g, _ := m["grad_norm"].(float64)
		for _, k := range []string{"time", "tokens_per_s", "mfu", "mem_bytes", "grad_norm"} {
			delete(m, k)
		}
		b, _ := json.Marshal(m)
		out = append(out, metricLine{string(b), g})
	}
	return out
}
