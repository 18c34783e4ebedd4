package rundir

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"github.com/msmtrain/msmtrain/data/loader"
)

// Float is a float64 that JSON carries as null when it is NaN or infinite (JSON has no such numbers), and that
// reads null back as NaN.
type Float float64

func (f Float) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(f), 'g', -1, 64), nil
}

func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Float(v)
	return nil
}

// Kinds of metrics.jsonl lines.
const (
	KindTrain = "train"
	KindEval  = "eval"
)

// TrainRecord is the metrics.jsonl line of one optimizer step.
type TrainRecord struct {
	Kind       string  `json:"kind"` // KindTrain
	Stage      string  `json:"stage"`
	Step       int     `json:"step"` // 1-based optimizer step within the stage
	Loss       Float   `json:"loss"` // mean per trained target token over the global batch; null if not finite
	LR         float64 `json:"lr"`
	GradNorm   Float   `json:"grad_norm"` // before clipping; null if not finite
	Tokens     int64   `json:"tokens"`    // non-padding tokens processed in the stage so far (all processes)
	Trained    int64   `json:"trained_tokens"`
	Fill       float64 `json:"fill"` // the step's slots holding a document (all processes), over all its slots
	TokensPerS float64 `json:"tokens_per_s"`
	MFU        float64 `json:"mfu"` // 0 when the device's peak is unknown
	MemBytes   int64   `json:"mem_bytes"`
	Skipped    bool    `json:"skipped,omitempty"` // non-finite gradients: no update
	Time       string  `json:"time"`              // RFC 3339, UTC
}

// EvalRecord is the metrics.jsonl line of one held-out evaluation.
type EvalRecord struct {
	Kind     string `json:"kind"` // KindEval
	Stage    string `json:"stage"`
	Step     int    `json:"step"`
	EvalLoss Float  `json:"eval_loss"` // mean per trained target token of the held-out split
	EvalPPL  Float  `json:"eval_ppl"`
	Tokens   int64  `json:"eval_tokens"`
	// BySource is the loss of each source of the data (prep's source names), when there is more than one.
	BySource map[string]SourceLoss `json:"by_source,omitempty"`
	Time     string                `json:"time"`
}

// SourceLoss is one source's held-out loss.
type SourceLoss struct {
	Loss   Float `json:"loss"`
	Tokens int64 `json:"tokens"`
}

// StageSummary is <stage>/summary.json (and DONE), and one entry of the run's summary.json.
type StageSummary struct {
	Name           string  `json:"name"`
	Kind           string  `json:"kind"`
	Steps          int     `json:"steps"`
	Tokens         int64   `json:"tokens"`
	TrainedTokens  int64   `json:"trained_tokens"`
	SkippedSteps   int     `json:"skipped_steps"`
	FinalTrainLoss float64 `json:"final_train_loss"`
	// FinalEvalLoss is the held-out loss at the end of the stage; null when there was no held-out data, and
	// EvalNote says why.
	FinalEvalLoss *float64 `json:"final_eval_loss"`
	EvalNote      string   `json:"eval_note,omitempty"`
	Seconds       float64  `json:"seconds"`
	Output        string   `json:"output"`
	// SharedFrom is the run directory where the stage was trained, when msmtrain experiment gave this run the
	// stage of another run of its seed with the same config up to it (empty: trained in this run).
	SharedFrom string `json:"shared_from,omitempty"`
}

// Summary is the run's summary.json.
type Summary struct {
	Stages []StageSummary `json:"stages"`
}

// CheckpointState is checkpoints/<name>/state.json: everything but the tensors (trainable.safetensors,
// optimizer.safetensors) that an exact resumption needs.
type CheckpointState struct {
	Version    int            `json:"version"`
	Stage      string         `json:"stage"`
	Step       int            `json:"step"`              // optimizer steps completed in the stage
	OptSteps   int64          `json:"optimizer_updates"` // AdamW updates applied (skipped steps excluded)
	Total      int            `json:"total_steps"`
	ConfigHash string         `json:"config_hash"`
	Loaders    []loader.State `json:"loaders"` // by rank
	RNG        []byte         `json:"rng_cpu"`
	RNGCUDA    []byte         `json:"rng_cuda,omitempty"`
	LoRARNG    []byte         `json:"rng_lora,omitempty"`
	Counters   Counters       `json:"counters"`
	// Shards is the layout of the sharded trainable weights, when the checkpoint holds them as slices (one
	// CheckpointShardFile per process) rather than whole in CheckpointTrainable.
	Shards *ShardLayout `json:"shards,omitempty"`
}

// ShardLayout says how a checkpoint's sharded tensors are cut: tensor Name (and its "<name>.exp_avg",
// "<name>.exp_avg_sq") flattened, padded with zeros to Chunk x World elements, and process r's file holding the
// flat elements [r*Chunk, (r+1)*Chunk) under the same names.
type ShardLayout struct {
	World  int                  `json:"world"`
	Params map[string]ShardInfo `json:"params"`
}

// ShardInfo is one sharded tensor: its element count whole and per process.
type ShardInfo struct {
	Whole int64 `json:"whole"`
	Chunk int64 `json:"chunk"`
}

// CheckpointVersion is the CheckpointState version this msmtrain writes and reads.
const CheckpointVersion = 1

// Counters are a stage's running totals.
type Counters struct {
	Tokens   int64   `json:"tokens"`  // non-padding tokens processed
	Trained  int64   `json:"trained"` // target tokens with loss
	Skipped  int     `json:"skipped_steps"`
	Seconds  float64 `json:"seconds"`
	LastLoss float64 `json:"last_loss"`
}

// ReadCheckpointState reads the state of the checkpoint directory path.
func ReadCheckpointState(path string) (CheckpointState, error) {
	var st CheckpointState
	p := path + string(os.PathSeparator) + CheckpointStateFile
	b, err := os.ReadFile(p)
	if err != nil {
		return st, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("checkpoint: %s: %w", p, err)
	}
	if st.Version != CheckpointVersion {
		return st, fmt.Errorf("checkpoint: %s: version %d, this msmtrain reads %d", path, st.Version, CheckpointVersion)
	}
	return st, nil
}

// ReadStageSummary reads <stage>/summary.json or DONE.
func ReadStageSummary(path string) (StageSummary, error) {
	var s StageSummary
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ReadSummary reads the run's summary.json; a missing file is (nil, nil).
func ReadSummary(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// LineError is a malformed line of metrics.jsonl.
type LineError struct {
	Path string
	Line int // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Metrics is what metrics.jsonl holds, line by line in file order.
type Metrics struct {
	Train []TrainRecord
	Eval  []EvalRecord
}

// ReadMetrics reads a metrics.jsonl; name is used in errors. Blank lines and lines of unknown kinds are skipped
// (newer writers may add kinds); a line that is not a JSON object with a kind is an error naming it.
func ReadMetrics(r io.Reader, name string) (*Metrics, error) {
	m := &Metrics{}
	br := bufio.NewReader(r)
	for lineNo := 1; ; lineNo++ {
		line, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return nil, fmt.Errorf("%s: %w", name, rerr)
		}
		if b := bytes.TrimSpace(line); len(b) > 0 {
			if err := m.add(b); err != nil {
				return nil, &LineError{Path: name, Line: lineNo, Err: err}
			}
		}
		if rerr == io.EOF {
			return m, nil
		}
	}
}

func (m *Metrics) add(b []byte) error {
	var k struct {
		Kind string `json:"kind"`
	}
	if err := strict(b, &k); err != nil {
		return err
	}
	switch k.Kind {
	case KindTrain:
		t := TrainRecord{Loss: Float(math.NaN()), GradNorm: Float(math.NaN())}
		if err := strict(b, &t); err != nil {
			return err
		}
		m.Train = append(m.Train, t)
	case KindEval:
		e := EvalRecord{EvalLoss: Float(math.NaN()), EvalPPL: Float(math.NaN())}
		if err := strict(b, &e); err != nil {
			return err
		}
		m.Eval = append(m.Eval, e)
	case "":
		return errors.New(`missing "kind"`)
	}
	return nil
}

// strict decodes one JSON value and refuses trailing data.
func strict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON object")
	}
	return nil
}
