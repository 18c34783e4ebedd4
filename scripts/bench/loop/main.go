// Command loop is `make bench-loop`: the tokens/s of msmtrain's real training loop (`msmtrain --config` on
// generated data, read from its metrics.jsonl) beside an idiomatic PyTorch eager training step of the same model
// and batch (eager.py, next to this file), for full fine-tuning and for LoRA, each program at its best thread
// count, with the ratio. PyTorch runs with glibc's malloc defaults and with the malloc settings msmtrain's shim
// gives itself (torch/csrc/tensor.cc), as any PyTorch user may in the environment; its best counts. Both inherit
// the rest of the environment (OPENBLAS_CORETYPE among it: the BLAS kernels are printed).
//
// The model is Qwen3-shaped: 4 layers, hidden 256, 4 query and 2 kv heads of 64, ffn 768, vocab 4096, untied
// head, float32; a step is 4 rows of 256 tokens (micro_batch = global_batch = 4). LoRA is r 16, alpha 32 on all
// seven projections, the base frozen. Each run takes 24 steps; its figure is the median tokens/s of steps 4-24
// (steps 1-3 are warm-up). The tokenizer is bytes only, so a document of n bytes is n+1 tokens: each document is
// a whole number of 257-token pieces (prep's overlong = "split") and every row is full, as in PyTorch's batch.
//
//	go run ./scripts/bench/loop [-msmtrain ./msmtrain] [-python /usr/bin/python3] [-threads 1,2] [-rounds 2] [-keep]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/msmtrain/msmtrain/data/tokenizer"
)

const (
	steps     = 24
	firstStep = 4 // first step of the timed window
	seqLen    = 256
	rows      = 4
	loraR     = 16
	loraAlpha = 32
)

// result is one run of one program.
type result struct {
	tokensPerS      float64       // median over the window
	maxRSS          int64         // bytes
	user, sys, wall time.Duration // of the whole process
}

func main() {
	msmtrain := flag.String("msmtrain", "./msmtrain", "the msmtrain binary")
	python := flag.String("python", "/usr/bin/python3", "a Python with torch (the same libtorch as msmtrain)")
	threadList := flag.String("threads", "1,2", "thread counts to try (model.threads; torch.set_num_threads)")
	rounds := flag.Int("rounds", 2, "runs of each program, case and thread count, interleaved; the best counts")
	eager := flag.String("eager", "scripts/bench/loop/eager.py", "the PyTorch side")
	keep := flag.Bool("keep", false, "keep the work directory")
	flag.Parse()
	if err := run(*msmtrain, *python, *eager, *threadList, *rounds, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench-loop:", err)
		os.Exit(1)
	}
}

func run(msmtrain, python, eager, threadList string, rounds int, keep bool) error {
	var threads []int
	for _, f := range strings.Split(threadList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -threads %q", threadList)
		}
		threads = append(threads, n)
	}
	dir, err := os.MkdirTemp("", "bench-loop-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	cfg, err := writeInputs(dir)
	if err != nil {
		return err
	}

	cases := []string{"full", "lora"}
	type key struct {
		prog, mode string
		threads    int
	}
	best := map[key]result{}
	bestEnv := map[key]string{}
	if out, err := exec.Command(msmtrain, "version").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "blas: ") {
				fmt.Println(l + "; PyTorch loads the same library")
			}
		}
	}
	for round := range rounds {
		for _, mode := range cases {
			for _, th := range threads {
				out := filepath.Join(dir, fmt.Sprintf("run-%s-%d-%d", mode, th, round))
				sets := []string{"--set", "out_dir=" + out, "--set", fmt.Sprintf("model.threads=%d", th),
					"--set", fmt.Sprintf("lora.enabled=%t", mode == "lora")}
				m, err := runMsmtrain(msmtrain, cfg, out, sets)
				if err != nil {
					return fmt.Errorf("msmtrain %s, %d threads: %w", mode, th, err)
				}
				fmt.Printf("round %d  %-4s  %d threads  msmtrain %6.0f tokens/s (user %4.1fs sys %4.1fs of %4.1fs)\n",
					round+1, mode, th, m.tokensPerS, m.user.Seconds(), m.sys.Seconds(), m.wall.Seconds())
				if k := (key{"msmtrain", mode, th}); m.tokensPerS > best[k].tokensPerS {
					best[k] = m
				}
				for _, e := range eagerEnvs {
					p, err := runEager(python, eager, mode, th, e.env)
					if err != nil {
						return fmt.Errorf("eager.py %s, %d threads, %s: %w", mode, th, e.name, err)
					}
					fmt.Printf("round %d  %-4s  %d threads  PyTorch  %6.0f tokens/s (user %4.1fs sys %4.1fs of %4.1fs), %s\n",
						round+1, mode, th, p.tokensPerS, p.user.Seconds(), p.sys.Seconds(), p.wall.Seconds(), e.name)
					if k := (key{"pytorch", mode, th}); p.tokensPerS > best[k].tokensPerS {
						best[k], bestEnv[k] = p, e.name
					}
				}
			}
		}
	}

	fmt.Printf("\nQwen3-shaped, 4 layers, hidden 256, vocab 4096, float32, %dx%d tokens/step; median tokens/s of "+
		"steps %d-%d, best of %d rounds; %d CPUs\n", rows, seqLen, firstStep, steps, rounds, runtime.NumCPU())
	fmt.Printf("%-20s %18s %4s %9s %18s %4s %9s %17s\n", "case", "msmtrain tokens/s", "thr", "peak MiB",
		"PyTorch tokens/s", "thr", "peak MiB", "msmtrain/PyTorch")
	for _, mode := range cases {
		var mb, pb result
		var mt, pt int
		var penv string
		for _, th := range threads {
			if r := best[key{"msmtrain", mode, th}]; r.tokensPerS > mb.tokensPerS {
				mb, mt = r, th
			}
			if k := (key{"pytorch", mode, th}); best[k].tokensPerS > pb.tokensPerS {
				pb, pt, penv = best[k], th, bestEnv[k]
			}
		}
		name := "full fine-tuning"
		if mode == "lora" {
			name = fmt.Sprintf("LoRA r%d alpha %d", loraR, loraAlpha)
		}
		fmt.Printf("%-20s %18.0f %4d %9d %18.0f %4d %9d %17.2f  (PyTorch: %s)\n", name, mb.tokensPerS, mt, mb.maxRSS>>20,
			pb.tokensPerS, pt, pb.maxRSS>>20, mb.tokensPerS/pb.tokensPerS, penv)
	}
	fmt.Println("thr: the thread count that won (model.threads; torch.set_num_threads); peak MiB: that run's RSS;")
	fmt.Println("user/sys/wall above: whole processes, start-up and msmtrain's prep included")
	return nil
}

// writeInputs writes the corpus, the tokenizer and the config into dir and returns the config's path.
func writeInputs(dir string) (string, error) {
	words := make([]string, 512)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range words {
		w := make([]byte, 2+rng.IntN(8))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = string(w)
	}
	// Each document is 4 rows' worth: 4*(seqLen+1) tokens with its EOS, split by prep into 4 full pieces.
	// 40 documents are 160 rows, more than the 24 steps x 4 rows take.
	var docs strings.Builder
	for range 40 {
		var b strings.Builder
		for b.Len() < 4*(seqLen+1)-1 {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		text := b.String()[:4*(seqLen+1)-1]
		line, err := json.Marshal(map[string]string{"text": text})
		if err != nil {
			return "", err
		}
		docs.Write(line)
		docs.WriteByte('\n')
	}
	tj, err := tokenizer.NewByteLevel(0, nil, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`name = "bench-loop"
out_dir = "runs/bench-loop"   # each run sets its own with --set

[model]
tokenizer = %q
chat_template = "chatml"
device = "cpu"
dtype = "float32"

[model.init]
model_type = "qwen3"
vocab_size = 4096
hidden_size = 256
intermediate_size = 768
num_hidden_layers = 4
num_attention_heads = 4
num_key_value_heads = 2
head_dim = 64
rms_norm_eps = 1e-6
rope_theta = 1000000.0
tie_word_embeddings = false
hidden_act = "silu"
max_position_embeddings = 1024

[lora]
enabled = false               # the LoRA case sets it
r = %d
alpha = %d

[train]
seq_len = %d
micro_batch = %d
global_batch = %d
mode = "pack"
steps = %d

[eval]
every = 0

[checkpoint]
every = 1000000

[log]
progress = "lines"

[[stages]]
name = "msm"
kind = "msm"
[stages.data]
overlong = "split"
val_fraction = 0.0
sources = [{ name = "random-words", path = %q, kind = "documents" }]
`, filepath.Join(dir, "tokenizer.json"), loraR, loraAlpha, seqLen, rows, rows, steps, filepath.Join(dir, "docs.jsonl"))
	files := map[string]string{"docs.jsonl": docs.String(), "tokenizer.json": string(tj), "bench.toml": cfg}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "bench.toml"), nil
}

// runMsmtrain trains with the config and reads the tokens/s of the window from out/metrics.jsonl.
func runMsmtrain(bin, cfg, out string, sets []string) (result, error) {
	cmd := exec.Command(bin, append([]string{"--config", cfg}, sets...)...)
	r, err := execute(cmd)
	if err != nil {
		return r, err
	}
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		return result{}, err
	}
	defer f.Close()
	var rates []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Kind       string  `json:"kind"`
			Step       int     `json:"step"`
			Tokens     int64   `json:"tokens"`
			TokensPerS float64 `json:"tokens_per_s"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return result{}, err
		}
		if rec.Kind != "train" {
			continue
		}
		if rec.Tokens != int64(rec.Step*rows*seqLen) { // rows not full: the comparison would not be fair
			return result{}, fmt.Errorf("step %d: %d tokens so far, want %d (rows not full)", rec.Step, rec.Tokens,
				rec.Step*rows*seqLen)
		}
		if rec.Step >= firstStep {
			rates = append(rates, rec.TokensPerS)
		}
	}
	if err := sc.Err(); err != nil {
		return result{}, err
	}
	if len(rates) != steps-firstStep+1 {
		return result{}, fmt.Errorf("%d train records in the window, want %d", len(rates), steps-firstStep+1)
	}
	r.tokensPerS = median(rates)
	return r, nil
}

// eagerEnvs are the environments PyTorch is tried in: glibc's malloc as it comes, and the settings msmtrain's shim
// gives itself (two arenas; blocks up to 32 MiB kept in the heap, not mapped and unmapped on every step).
var eagerEnvs = []struct {
	name string
	env  []string
}{
	{"glibc malloc defaults", nil},
	{"msmtrain's malloc settings", []string{"MALLOC_ARENA_MAX=2", "MALLOC_MMAP_THRESHOLD_=33554432",
		"MALLOC_TRIM_THRESHOLD_=1073741824", "MALLOC_TOP_PAD_=268435456"}},
}

// runEager runs eager.py with env added to the environment and takes the median tokens/s of the same window.
func runEager(python, script, mode string, threads int, env []string) (result, error) {
	cmd := exec.Command(python, script, strconv.Itoa(threads), mode, strconv.Itoa(steps),
		strconv.Itoa(loraR), strconv.Itoa(loraAlpha))
	cmd.Env = append(os.Environ(), env...)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	r, err := execute(cmd)
	if err != nil {
		return r, err
	}
	var out struct {
		StepSeconds   []float64 `json:"step_seconds"`
		TokensPerStep int       `json:"tokens_per_step"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &out); err != nil {
		return result{}, fmt.Errorf("reading its output: %w", err)
	}
	if len(out.StepSeconds) != steps || out.TokensPerStep != rows*seqLen {
		return result{}, fmt.Errorf("%d steps of %d tokens, want %d of %d", len(out.StepSeconds), out.TokensPerStep,
			steps, rows*seqLen)
	}
	var rates []float64
	for _, s := range out.StepSeconds[firstStep-1:] {
		rates = append(rates, float64(out.TokensPerStep)/s)
	}
	r.tokensPerS = median(rates)
	return r, nil
}

// execute runs cmd; its stderr (and stdout, if not taken) is kept for an error message. The result has the
// child's CPU times, wall time and peak RSS.
func execute(cmd *exec.Cmd) (result, error) {
	var log strings.Builder
	if cmd.Stdout == nil {
		cmd.Stdout = &log
	}
	cmd.Stderr = &log
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, log.String())
	}
	r := result{user: cmd.ProcessState.UserTime(), sys: cmd.ProcessState.SystemTime(), wall: time.Since(t0)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss << 10 // KiB on Linux
	}
	return r, nil
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
