package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/plan"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/data/tokenizer"
)

// runPlan prints the per-GPU memory of a training config, unsharded and sharded, and whether it fits. Exit
// status: 0 when the configured dist.shard fits, 1 when it does not (or on an error), so that a job script can
// run it before the training: msmtrain plan --config run.toml --gpus 8 && srun ... msmtrain --config run.toml.
func runPlan(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", stderr)
	path := fs.String("config", "", "training config (TOML); of the model only its config.json is read")
	var sets multiFlag
	fs.Var(&sets, "set", "override a config value: section.key=value or stages.NAME.key=value (repeatable)")
	gpus := fs.Int("gpus", launchWorld(), "processes, one per GPU (default: WORLD_SIZE or SLURM_NTASKS, else 1)")
	mem := fs.Float64("gpu-memory", 80, "memory of one GPU in GiB (nvidia-smi's total: 80 for an H100 or A100 80GB, 141 for an H200)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" || fs.NArg() > 0 {
		return fmt.Errorf("plan: usage: msmtrain plan --config FILE [--gpus N] [--gpu-memory GiB] [--set k=v]")
	}
	if *gpus < 1 {
		return fmt.Errorf("plan: --gpus %d: want >= 1", *gpus)
	}
	cfg, err := readPlanConfig(*path, sets)
	if err != nil {
		return err
	}
	p, err := planForConfig(cfg, *gpus, *mem)
	if err != nil {
		return err
	}
	p.Format(stdout)
	if !p.Fits() {
		return &exitCode{1, fmt.Errorf("plan: the run does not fit (exit status 1)")}
	}
	return nil
}

// planForConfig is the plan of a training config on world GPUs of gpuMemGiB each, with its dist.shard, for the
// stage whose micro-batch needs the most memory: what the trainer can run at start to refuse a run that will not
// fit.
func planForConfig(cfg *train.Config, world int, gpuMemGiB float64) (*plan.Plan, error) {
	m, src, err := planModel(cfg)
	if err != nil {
		return nil, err
	}
	device := "cpu"
	if strings.HasPrefix(cfg.Model.Device, "cuda") {
		device = "cuda"
	}
	r := plan.Run{Model: m, DType: cfg.Model.DType, Device: device, Checkpointing: cfg.Model.Checkpointing,
		World: world, Shard: cfg.Dist.Shard}
	if cfg.LoRA.Enabled {
		r.LoRA = &plan.LoRA{Rank: cfg.LoRA.Rank, Targets: cfg.LoRA.Targets}
	}
	stages := cfg.Stages
	if len(stages) == 0 {
		stages = []train.Stage{{Train: cfg.Train}}
	}
	var best *plan.Plan
	for _, st := range stages {
		r.SeqLen, r.MicroBatch = st.Train.SeqLen, st.Train.MicroBatch
		p, err := plan.New(r, gpuMemGiB)
		if err != nil {
			return nil, fmt.Errorf("plan: stage %s: %w", st.Name, err)
		}
		p.Stage, p.Source = st.Name, src
		if best == nil || p.Chosen().Peak > best.Chosen().Peak {
			best = p
		}
	}
	return best, nil
}

// planModel reads the shape of cfg's model: model.path's config.json, or model.init (whose vocab_size defaults
// to the tokenizer's size, as in training).
func planModel(cfg *train.Config) (plan.Model, string, error) {
	if cfg.Model.Path != "" {
		m, err := plan.ReadModel(cfg.Model.Path)
		return m, cfg.Model.Path, err
	}
	init := map[string]any{}
	for k, v := range cfg.Model.Init {
		init[k] = v
	}
	if _, ok := init["vocab_size"]; !ok {
		tok, err := tokenizer.Load(cfg.TokenizerPath())
		if err != nil {
			return plan.Model{}, "", fmt.Errorf("plan: model.init has no vocab_size and the tokenizer gives none: %w", err)
		}
		init["vocab_size"] = tok.VocabSize()
	}
	b, err := json.Marshal(init)
	if err != nil {
		return plan.Model{}, "", fmt.Errorf("plan: model.init: %w", err)
	}
	m, err := plan.ParseModel(b)
	if err != nil {
		return plan.Model{}, "", fmt.Errorf("plan: model.init: %w", err)
	}
	return m, "model.init", nil
}

// readPlanConfig decodes a training config as train.Load does (train.Decode: the same schema, defaults and --set),
// without the checks of files a plan does not need: the data, the tokenizer, the checkpoint's weights
// (model.path needs only its config.json).
func readPlanConfig(path string, sets []string) (*train.Config, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	c, err := train.Decode(text, path, sets)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if len(c.Model.Path) == 0 && len(c.Model.Init) == 0 {
		return nil, fmt.Errorf("plan: %s: set model.path (a directory with the model's config.json) or model.init", path)
	}
	switch c.Dist.Shard {
	case "", "none", "full":
	default:
		return nil, fmt.Errorf("plan: %s: dist.shard = %q: want none or full", path, c.Dist.Shard)
	}
	return c, nil
}

// launchWorld is the number of processes of the launch this command runs in (torchrun's WORLD_SIZE, Slurm's
// SLURM_NTASKS), else 1.
func launchWorld() int {
	for _, k := range []string{"WORLD_SIZE", "SLURM_NTASKS"} {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
			return n
		}
	}
	return 1
}
