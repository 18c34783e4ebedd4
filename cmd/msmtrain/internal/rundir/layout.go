// Package rundir is the run directory's one definition: its layout, the records its files hold, and the way they
// are written (atomically, never through a symbolic link). The trainer writes through it, `msmtrain report` and
// the end-of-stage evaluations read through it. FORMAT.md describes the directory for readers outside Go.
package rundir

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Entries of a run directory.
const (
	ConfigFile     = "config.toml"   // the resolved config the run started with
	MetricsFile    = "metrics.jsonl" // one TrainRecord per step, one EvalRecord per held-out evaluation
	SummaryFile    = "summary.json"  // Summary, when every stage is done
	LockFile       = ".lock"         // flock of the process that trains the run
	DataDir        = "data"          // data/<stage>/{train,val}: prepared shards (data/shard/FORMAT.md)
	CheckpointsDir = "checkpoints"   // checkpoints/<stage>-stepNNNNNNNN/
	EvalDir        = "eval"          // eval/<stage>-mc.json: end-of-stage multiple-choice results
	TensorBoardDir = "tensorboard"   // tensorboard/<stage>/: TensorBoard event files of the stage's scalars
	ReportDir      = "report"        // msmtrain report's default output

	OutputDir        = "output"              // <stage>/output: a PEFT adapter or a Hugging Face model
	StageSummaryFile = "summary.json"        // <stage>/summary.json: StageSummary
	DoneFile         = "DONE"                // <stage>/DONE: the stage is complete (a copy of its summary)
	DataRecordFile   = "data.json"           // <stage>/data.json: the data the stage started on
	GenerationsFile  = "generations.jsonl"   // <stage>/generations.jsonl: end-of-stage answers to eval_prompts
	MCItemsFile      = "eval_mc_items.jsonl" // <stage>/eval_mc_items.jsonl: end-of-stage eval_mc, per item
	ProbeItemsFile   = "probe_items.jsonl"   // <stage>/probe_items.jsonl: value probes of msmtrain experiment, per item
	ExperimentLog    = "experiment.log"      // the output of the training processes msmtrain experiment started

	CheckpointStateFile = "state.json"            // checkpoints/<name>/state.json: CheckpointState
	CheckpointTrainable = "trainable.safetensors" // the trainable weights (those not sharded over processes)
	CheckpointOptimizer = "optimizer.safetensors" // their AdamW moments, "<name>.exp_avg" and "<name>.exp_avg_sq"
)

// CheckpointShardFile is the file of a checkpoint that holds process rank's slices of the sharded trainable weights
// and their AdamW moments (dist.shard = "full", full fine-tuning), one per process of world.
func CheckpointShardFile(rank, world int) string {
	return fmt.Sprintf("shard-%05d-of-%05d.safetensors", rank, world)
}

// Reserved are the run directory's own entries that a stage's directory would collide with.
var Reserved = []string{DataDir, CheckpointsDir, EvalDir, TensorBoardDir, ReportDir}

// Dir is a run directory.
type Dir string

func (d Dir) path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

func (d Dir) Config() string  { return d.path(ConfigFile) }
func (d Dir) Metrics() string { return d.path(MetricsFile) }
func (d Dir) Summary() string { return d.path(SummaryFile) }
func (d Dir) Lock() string    { return d.path(LockFile) }

// ExperimentLogPath is the log of the training processes of a run of msmtrain experiment (appended to on every
// start).
func (d Dir) ExperimentLogPath() string { return d.path(ExperimentLog) }
func (d Dir) CheckpointDir() string     { return d.path(CheckpointsDir) }
func (d Dir) TensorBoard() string       { return d.path(TensorBoardDir) }
func (d Dir) EvalResults() string       { return d.path(EvalDir) }
func (d Dir) Data(stage string) string  { return d.path(DataDir, stage) }

// Stage is the directory of a stage's products.
func (d Dir) Stage(stage string) string        { return d.path(stage) }
func (d Dir) Output(stage string) string       { return d.path(stage, OutputDir) }
func (d Dir) StageSummary(stage string) string { return d.path(stage, StageSummaryFile) }
func (d Dir) Done(stage string) string         { return d.path(stage, DoneFile) }
func (d Dir) DataRecord(stage string) string   { return d.path(stage, DataRecordFile) }
func (d Dir) Generations(stage string) string  { return d.path(stage, GenerationsFile) }
func (d Dir) MCItems(stage string) string      { return d.path(stage, MCItemsFile) }
func (d Dir) ProbeItems(stage string) string   { return d.path(stage, ProbeItemsFile) }

// TensorBoardStage is the TensorBoard directory of a stage's scalars: tensorboard/<stage>/ (one TensorBoard run
// per stage, as each stage counts its own steps from 1).
func (d Dir) TensorBoardStage(stage string) string { return d.path(TensorBoardDir, stage) }

// MCResult is the end-of-stage multiple-choice result file of a stage.
func (d Dir) MCResult(stage string) string { return d.path(EvalDir, stage+"-mc.json") }

// ProbeResult is the value-probe result of a stage (msmtrain experiment): {"n", "values": {V: {"n", "share",
// "share_norm", "margin"}}, "probes_file", "probes_sha256", "stage_done_sha256"}.
func (d Dir) ProbeResult(stage string) string { return d.path(EvalDir, stage+"-probes.json") }

// Checkpoint is the directory of a stage's checkpoint after step optimizer steps.
func (d Dir) Checkpoint(stage string, step int) string {
	return d.path(CheckpointsDir, CheckpointName(stage, step))
}

// CheckpointName names a checkpoint directory: <stage>-stepNNNNNNNN.
func CheckpointName(stage string, step int) string { return fmt.Sprintf("%s-step%08d", stage, step) }

// CheckpointStep is the step of a checkpoint directory's name, or -1.
func CheckpointStep(path string) int {
	name := filepath.Base(path)
	i := strings.LastIndex(name, "-step")
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(name[i+len("-step"):])
	if err != nil {
		return -1
	}
	return n
}

// Checkpoints lists the complete checkpoints of stage (those with a state file), oldest first.
func (d Dir) Checkpoints(stage string) ([]string, error) {
	return ListCheckpoints(d.CheckpointDir(), stage)
}

// ListCheckpoints lists the complete checkpoints of stage in dir, oldest first.
func ListCheckpoints(dir, stage string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type ck struct {
		path string
		step int
	}
	var cks []ck
	for _, e := range ents {
		n := e.Name()
		rest, ok := strings.CutPrefix(n, stage+"-step")
		if !e.IsDir() || !ok {
			continue
		}
		step, err := strconv.Atoi(rest)
		if err != nil {
			continue
		}
		p := filepath.Join(dir, n)
		if _, err := os.Stat(filepath.Join(p, CheckpointStateFile)); err != nil {
			continue
		}
		cks = append(cks, ck{p, step})
	}
	sort.Slice(cks, func(i, j int) bool { return cks[i].step < cks[j].step })
	out := make([]string, len(cks))
	for i, c := range cks {
		out[i] = c.path
	}
	return out, nil
}
