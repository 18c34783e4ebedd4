package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/prep"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch"
)

// A stage's data is checked before its first step, and a stage resumes only on the data it started on:
//
//   - Every shard of the stage, train and validation, is checked against its manifest before the first step:
//     header and index (CRC-32C), size, counts and the SHA-256 of the whole file. For data prepared by the run,
//     prep does it (and rebuilds what fails, from the inputs); a stage's `dataset` is checked here. Hashing reads
//     each shard once, in parallel: about 1 s per GB of shards (see data/shard.OpenOptions), against hours of
//     training on that many tokens. Block contents are checked again as the loader decodes them.
//   - RUN/<stage>/data.json records the data a stage started on: the prep hash and input files, and the SHA-256 of
//     every shard. A stage with a checkpoint whose inputs (or prepared shards) changed since is refused, naming the
//     changed files, before anything is rebuilt; Env.RestartStage (msmtrain --restart-stage NAME) starts it over
//     from step 0 on the new data instead.

// dataRecord identifies the data a stage trains on.
type dataRecord struct {
	Dataset  string            `json:"dataset"`             // the prepared dataset's directory
	PrepHash string            `json:"prep_hash,omitempty"` // the prep hash of its train split
	Inputs   []shard.InputFile `json:"inputs,omitempty"`    // the input files it was prepared from
	Shards   []string          `json:"shards"`              // "split/file sha256" of every shard
}

// stageData is what a stage trains and evaluates on.
type stageData struct {
	train, val *shard.Dataset
	// noVal says why there is no held-out data when val is nil.
	noVal string
}

func (d *stageData) Close() {
	d.train.Close()
	if d.val != nil {
		d.val.Close()
	}
}

// datasetDir is the directory of a stage's prepared data: RUN/data/<stage>, or the stage's dataset.
func (c *Config) datasetDir(st *Stage) string {
	if st.Dataset != "" {
		return st.Dataset
	}
	return filepath.Join(c.OutDir, "data", st.Name)
}

// prepareData readies a stage's data (rank 0: prepares and checks it, refuses changed data under a checkpoint;
// the other processes wait) and opens it. A stop request abandons the preparation (prep publishes nothing
// incomplete) and returns ErrStopped on every process; a failure on rank 0 fails every process, the others naming
// rank 0, instead of leaving them in the barrier until its timeout.
func prepareData(ctx context.Context, cfg *Config, st *Stage, env Env) (*stageData, error) {
	var perr error
	if env.Dist.Rank == 0 {
		pctx, cancel := stopContext(ctx, env)
		perr = readyData(pctx, cfg, st, env)
		cancel()
		if perr != nil && !(env.stopped() && errors.Is(perr, context.Canceled)) {
			perr = fmt.Errorf("stage %s: data: %w", st.Name, perr)
		}
	}
	if err := waitRank0(env, "rank 0 to prepare the data of stage "+st.Name); err != nil {
		return nil, err
	}
	failed := 0.0
	if perr != nil {
		failed = 1
	}
	stop := 0.0
	if env.stopped() {
		stop = 1
	}
	x, err := reduceSmall(env, []float64{failed, stop}, torch.ReduceOpMax)
	if err != nil {
		return nil, err
	}
	switch {
	case perr != nil && !(env.stopped() && errors.Is(perr, context.Canceled)):
		return nil, perr
	case x[0] != 0 && x[1] == 0:
		return nil, fmt.Errorf("stage %s: data: rank 0 failed to prepare the data (its log says why)", st.Name)
	case x[1] != 0:
		if env.Dist.Rank == 0 {
			fmt.Fprintf(env.Out, "stage %s: stop requested while preparing data; nothing incomplete was kept\n", st.Name)
		}
		return nil, ErrStopped
	}
	d, err := openData(cfg, st)
	if err != nil {
		return nil, fmt.Errorf("stage %s: data: %w", st.Name, err)
	}
	return d, nil
}

// readyData prepares the stage's sources, or checks its dataset, and compares the result with the data the stage
// started on.
func readyData(ctx context.Context, cfg *Config, st *Stage, env Env) error {
	cks, err := rundir.ListCheckpoints(filepath.Join(cfg.OutDir, "checkpoints"), st.Name)
	if err != nil {
		return err
	}
	stageDir := filepath.Join(cfg.OutDir, st.Name)
	recPath := filepath.Join(stageDir, rundir.DataRecordFile)
	rec, err := readDataRecord(recPath)
	if err != nil {
		return err
	}
	dir := cfg.datasetDir(st)
	started := len(cks) > 0
	var changes []string
	if st.Dataset == "" {
		pc, err := cfg.PrepConfig(st)
		if err != nil {
			return err
		}
		plan, err := prep.NewPlan(pc)
		if err != nil {
			return err
		}
		if started {
			// Before anything is rebuilt: the inputs against those the stage started on (or, for a stage started
			// before data.json was kept, those of the data still on disk).
			old := rec
			if old == nil {
				if m, err := shard.ReadManifest(filepath.Join(dir, "train")); err == nil {
					old = &dataRecord{PrepHash: m.PrepHash, Inputs: m.Inputs}
				}
			}
			if old != nil && old.PrepHash != plan.Hash {
				changes = prep.ChangedInputs(old.Inputs, plan.Inputs())
				if len(changes) == 0 {
					changes = []string{"the tokenizer, the data options or msmtrain's encoding of records changed"}
				}
			}
		}
		if len(changes) == 0 || env.RestartStage == st.Name {
			sum, err := plan.Run(ctx, env.Err)
			if err != nil {
				return err
			}
			if !sum.UpToDate {
				fmt.Fprintf(env.Out, "stage %s: prepared %d train docs (%d tokens), %d val docs\n", st.Name, sum.TrainDocs,
					sum.TrainTokens, sum.ValDocs)
			}
		}
	} else if err := verifyDataset(cfg, dir); err != nil {
		return err
	}
	cur, err := currentRecord(dir)
	if err != nil {
		return err
	}
	if started && rec != nil && len(changes) == 0 && !slices.Equal(rec.Shards, cur.Shards) {
		changes = []string{fmt.Sprintf("the prepared data in %s differs from the data the stage started on", dir)}
		if c := prep.ChangedInputs(rec.Inputs, cur.Inputs); len(c) > 0 {
			changes = c
		}
	}
	if len(changes) > 0 {
		step := rundir.CheckpointStep(cks[len(cks)-1])
		if env.RestartStage != st.Name {
			return fmt.Errorf("the stage's data changed since it started, and it has a checkpoint at step %d:\n  %s\n"+
				"resuming would continue on other data. Restore the inputs, or pass --restart-stage %s to start the stage "+
				"over from step 0 on the new data", step, strings.Join(changes, "\n  "), st.Name)
		}
		fmt.Fprintf(env.Out, "stage %s: data changed since the stage started (%s); --restart-stage %s: discarding its "+
			"checkpoints (up to step %d) and starting over from step 0\n", st.Name, strings.Join(changes, "; "), st.Name, step)
		for _, ck := range cks {
			if err := os.RemoveAll(ck); err != nil {
				return err
			}
		}
		started = false
	}
	if !started || rec == nil {
		if err := os.MkdirAll(stageDir, 0o755); err != nil {
			return err
		}
		b, err := json.MarshalIndent(cur, "", "  ")
		if err != nil {
			return err
		}
		return rundir.WriteFile(recPath, append(b, '\n'))
	}
	return nil
}

// verifyDataset checks every shard of a stage's dataset (train, and val when there is one) against its manifest,
// SHA-256 included, and that it was made with the model's tokenizer.
func verifyDataset(cfg *Config, dir string) error {
	tok, err := tokenizer.Load(cfg.TokenizerPath())
	if err != nil {
		return err
	}
	for _, split := range []string{"train", "val"} {
		p := filepath.Join(dir, split)
		if _, err := os.Stat(p); split == "val" && errors.Is(err, os.ErrNotExist) {
			continue
		}
		ds, err := shard.OpenDataset(p, shard.OpenOptions{TokenizerHash: tok.Hash(), VerifySHA256: true})
		if err != nil {
			return err
		}
		ds.Close()
	}
	return nil
}

// currentRecord describes the prepared data in dir from its manifests.
func currentRecord(dir string) (*dataRecord, error) {
	r := &dataRecord{Dataset: dir, Shards: []string{}}
	for _, split := range []string{"train", "val"} {
		p := filepath.Join(dir, split)
		if _, err := os.Stat(p); split == "val" && errors.Is(err, os.ErrNotExist) {
			continue
		}
		m, err := shard.ReadManifest(p)
		if err != nil {
			return nil, err
		}
		if split == "train" {
			r.PrepHash, r.Inputs = m.PrepHash, m.Inputs
		}
		for _, s := range m.Shards {
			r.Shards = append(r.Shards, split+"/"+s.File+" "+s.SHA256)
		}
	}
	return r, nil
}

func readDataRecord(path string) (*dataRecord, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r dataRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w (delete it to adopt the data now in place)", path, err)
	}
	return &r, nil
}

// openData opens a stage's train and val splits, which rank 0 has checked. A stage's val is optional for a
// dataset (no val/ directory); a val/ that does not open is an error, never skipped.
func openData(cfg *Config, st *Stage) (*stageData, error) {
	dir := cfg.datasetDir(st)
	var o shard.OpenOptions
	if st.Dataset != "" {
		tok, err := tokenizer.Load(cfg.TokenizerPath())
		if err != nil {
			return nil, err
		}
		o.TokenizerHash = tok.Hash()
	}
	train, err := shard.OpenDataset(filepath.Join(dir, "train"), o)
	if err != nil {
		return nil, err
	}
	d := &stageData{train: train}
	vdir := filepath.Join(dir, "val")
	if _, err := os.Stat(vdir); st.Dataset != "" && errors.Is(err, os.ErrNotExist) {
		d.noVal = fmt.Sprintf("no held-out data: %s has no val/", dir)
		return d, nil
	}
	val, err := shard.OpenDataset(vdir, o)
	if err != nil {
		train.Close()
		return nil, err
	}
	if val.Manifest.Trained == 0 {
		val.Close()
		switch {
		case st.Dataset == "" && st.Data.ValFraction == 0:
			d.noVal = "no held-out data: data.val_fraction is 0"
		case val.Manifest.Docs == 0:
			d.noVal = fmt.Sprintf("no held-out data: no document in %s", vdir)
		default:
			d.noVal = fmt.Sprintf("no held-out data: no trained token in %s", vdir)
		}
		return d, nil
	}
	d.val = val
	return d, nil
}

// checkPadding refuses a micro-batch so large for the stage's data that most rows of its batches would hold no
// document, and warns when more than a tenth would: those rows cost a full forward and backward pass each and
// train nothing. The loss stays right (it is normalised by trained tokens), so only waste is at stake: more than
// half is almost surely a mistake (micro_batch meant for a larger dataset), while the last, partly filled batch of
// an epoch is normal.
func checkPadding(st *Stage, ds *shard.Dataset, ld *loader.Loader, streams, world int, warn io.Writer) error {
	info, err := ld.Epoch(0)
	if err != nil {
		return err
	}
	rows := int64(info.Steps) * int64(st.Train.MicroBatch) * int64(streams)
	if rows == 0 || info.EmptyRows*10 <= rows {
		return nil
	}
	used := rows - info.EmptyRows
	what := fmt.Sprintf("micro_batch %d x %d micro-batches per step (%d processes) is large for the data of stage %s: its "+
		"%d documents fill %d rows of seq_len %d, and an epoch of %d steps has %d rows, %.0f%% of them padding only",
		st.Train.MicroBatch, streams, world, st.Name, ds.NumDocs(), used, st.Train.SeqLen, info.Steps, rows,
		100*float64(info.EmptyRows)/float64(rows))
	if 2*info.EmptyRows > rows {
		return fmt.Errorf("%s; set micro_batch to %d or less (and global_batch to match), or add data", what,
			max(1, used/int64(streams)))
	}
	if warn != nil {
		fmt.Fprintf(warn, "warning: %s\n", what)
	}
	return nil
}

// DataChanges compares the data stage st would train on now with the data recorded in stageDir/data.json by a
// finished stage (of this run, or of another run of the same config that msmtrain experiment gives the stage
// to): nil when they are the same, else what changed, one line each. A stage directory without data.json has
// nothing to compare: nil.
func (c *Config) DataChanges(st *Stage, stageDir string) ([]string, error) {
	rec, err := readDataRecord(filepath.Join(stageDir, rundir.DataRecordFile))
	if err != nil || rec == nil {
		return nil, err
	}
	if st.Dataset != "" {
		cur, err := currentRecord(c.datasetDir(st))
		if err != nil {
			return nil, err
		}
		if !slices.Equal(rec.Shards, cur.Shards) {
			return []string{fmt.Sprintf("the prepared data in %s differs from the data the stage was trained on", st.Dataset)}, nil
		}
		return nil, nil
	}
	pc, err := c.PrepConfig(st)
	if err != nil {
		return nil, err
	}
	plan, err := prep.NewPlan(pc)
	if err != nil {
		return nil, err
	}
	if plan.Hash == rec.PrepHash {
		return nil, nil
	}
	if ch := prep.ChangedInputs(rec.Inputs, plan.Inputs()); len(ch) > 0 {
		return ch, nil
	}
	return []string{"the tokenizer, the data options or msmtrain's encoding of records changed"}, nil
}
