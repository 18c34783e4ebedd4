package experiment

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
)

// probeCache is the file ProbeFile: the summary, and what it was computed from. It is used again while the probe
// file and the stage's DONE file (rewritten when the stage is trained again) keep their SHA-256.
type probeCache struct {
	infer.ProbeSummary
	ProbesFile      string `json:"probes_file"`
	ProbesSHA256    string `json:"probes_sha256"`
	StageDoneSHA256 string `json:"stage_done_sha256"`
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// EvaluateProbes returns the probe results of every stage of the finished run r: from the cache in its directory
// when it is current, else scored by fn and cached. The run directory is locked while it is written (as training
// does), so that a training process cannot start in it meanwhile.
func EvaluateProbes(c *Config, r *Run, fn ProbeFunc, warn io.Writer) (map[string]infer.ProbeSummary, error) {
	probesHash, err := fileSHA256(c.Probes.File)
	if err != nil {
		return nil, err
	}
	out := map[string]infer.ProbeSummary{}
	var lock *train.RunLock
	defer func() { lock.Close() }()
	for _, stage := range r.Stages {
		doneHash, err := fileSHA256(rundir.Dir(r.Dir).Done(stage))
		if err != nil {
			return nil, fmt.Errorf("stage %s is not complete: %w", stage, err)
		}
		path := rundir.Dir(r.Dir).ProbeResult(stage)
		var cached probeCache
		if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &cached) == nil &&
			cached.ProbesSHA256 == probesHash && cached.StageDoneSHA256 == doneHash && cached.Values != nil {
			out[stage] = cached.ProbeSummary
			continue
		}
		if fn == nil {
			continue
		}
		if lock == nil {
			if lock, err = train.LockRun(r.Dir, warn); err != nil {
				return nil, err
			}
		}
		sum, err := fn(r.Config, stage, c.Probes.File)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", stage, err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := rundir.WriteJSON(path, probeCache{sum, c.Probes.File, probesHash, doneHash}); err != nil {
			return nil, err
		}
		out[stage] = sum
	}
	return out, nil
}

// RunResult is what an experiment's report knows of one run.
type RunResult struct {
	Arm   string   `json:"arm"`
	Seed  int64    `json:"seed"`
	Dir   string   `json:"dir"`
	State string   `json:"state"`
	Done  []string `json:"stages_done"`
	// Metrics by stage then name: probe.<value>.{share,share_norm,margin} (the probes), eval_loss (the stage's
	// final held-out loss, when it had held-out data), mc_accuracy, mc_accuracy_norm, mc_margin (its eval_mc).
	Metrics map[string]map[string]float64 `json:"metrics"`
}

// Collect reads the results of every run: the state, and for finished runs the metrics of each stage. With fn,
// probe results missing from a finished run's cache are scored; without, only cached ones are read.
func Collect(c *Config, runs []*Run, fn ProbeFunc, warn io.Writer) ([]RunResult, error) {
	var out []RunResult
	for _, r := range runs {
		st, err := RunStatus(r)
		if err != nil {
			return nil, fmt.Errorf("experiment: %w", err)
		}
		res := RunResult{Arm: r.Arm, Seed: r.Seed, Dir: r.Dir, State: st.State, Done: st.Done, Metrics: map[string]map[string]float64{}}
		if st.State == Finished {
			if res.Metrics, err = runMetrics(c, r, fn, warn); err != nil {
				return nil, fmt.Errorf("experiment: run %s: %w", r.Name(), err)
			}
		}
		out = append(out, res)
	}
	return out, nil
}

func runMetrics(c *Config, r *Run, fn ProbeFunc, warn io.Writer) (map[string]map[string]float64, error) {
	d := rundir.Dir(r.Dir)
	out := map[string]map[string]float64{}
	set := func(stage, name string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		if out[stage] == nil {
			out[stage] = map[string]float64{}
		}
		out[stage][name] = v
	}
	for _, stage := range r.Stages {
		ss, err := rundir.ReadStageSummary(d.StageSummary(stage))
		if err != nil {
			return nil, err
		}
		if ss.FinalEvalLoss != nil {
			set(stage, MetricEvalLoss, *ss.FinalEvalLoss)
		}
		b, err := os.ReadFile(d.MCResult(stage))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, err
		default:
			var mc map[string]float64
			if err := json.Unmarshal(b, &mc); err != nil {
				return nil, fmt.Errorf("%s: %w", d.MCResult(stage), err)
			}
			for _, k := range []string{MetricMC, MetricMCNorm, MetricMCMargin} {
				if v, ok := mc[k]; ok {
					set(stage, k, v)
				}
			}
		}
	}
	if c.Probes.File == "" {
		return out, nil
	}
	probes, err := EvaluateProbes(c, r, fn, warn)
	if err != nil {
		return nil, fmt.Errorf("probes: %w", err)
	}
	for stage, sum := range probes {
		for v, pv := range sum.Values {
			set(stage, "probe."+v+".share", pv.Share)
			set(stage, "probe."+v+".share_norm", pv.ShareNorm)
			set(stage, "probe."+v+".margin", pv.Margin)
		}
	}
	return out, nil
}
