package experiment

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/data/atomicfile"
)

// Shared stages. The arms of one seed often run the same first stages (the toy experiment's pretraining, or a
// common MSM stage before arms that differ in AFT): same config, same seed, so the same model. Before a run
// starts, Execute gives it the finished stages it has in common with an earlier run of its seed, instead of
// training them again: the stage directory (its output hard-linked, the rest copied, summary.json and DONE
// naming where it was trained: StageSummary.SharedFrom) and its lines of metrics.jsonl. The trainer then skips
// those stages as done and continues from the last one's output, as it does when it resumes a run. Beside the
// time, this makes the paired comparison exact: the arms of a seed start their differences from one model, not
// from two that are only meant to be bitwise equal. Runs of a Slurm array are independent and share nothing.

// sharedPrefix returns how many first stages of b are the same computation as a's: the same stage names, and the
// resolved configs of the two runs cut after that stage equal in everything that changes the training
// (train.Incompatible), the run directories aside.
func sharedPrefix(a, b *Run) (int, error) {
	if a.Seed != b.Seed {
		return 0, nil
	}
	k := 0
	for k < len(a.Config.Stages) && k < len(b.Config.Stages) && a.Config.Stages[k].Name == b.Config.Stages[k].Name {
		ra, err := cutResolved(a.Config, k+1)
		if err != nil {
			return 0, err
		}
		rb, err := cutResolved(b.Config, k+1)
		if err != nil {
			return 0, err
		}
		diffs, err := train.Incompatible(ra, rb)
		if err != nil {
			return 0, err
		}
		if len(diffs) > 0 {
			break
		}
		k++
	}
	return k, nil
}

// cutResolved is the resolved config of c with its first n stages only and no run directory.
func cutResolved(c *train.Config, n int) ([]byte, error) {
	cut := *c
	cut.Stages = c.Stages[:n]
	cut.OutDir = ""
	return cut.Resolved()
}

// shareFrom finds the earlier run of r's seed whose finished stages r has most in common with, and returns it and
// those stages (nil when there is none).
func shareFrom(r *Run, runs []*Run) (*Run, []string, error) {
	var best *Run
	var stages []string
	for _, d := range runs {
		if d.Index >= r.Index || d.Seed != r.Seed {
			continue
		}
		k, err := sharedPrefix(d, r)
		if err != nil {
			return nil, nil, fmt.Errorf("comparing %s with %s: %w", r.Name(), d.Name(), err)
		}
		n := 0
		for n < k {
			if _, err := os.Stat(rundir.Dir(d.Dir).Done(r.Stages[n])); err != nil {
				break
			}
			n++
		}
		if n > len(stages) {
			best, stages = d, r.Stages[:n]
		}
	}
	return best, stages, nil
}

// shareStages puts the stages of donor into r's run directory, which training has not started (no config.toml),
// after checking that the donor trained them on the data they would train on now (else it is an error):
// each stage directory is assembled in a temporary directory beside its place and renamed into it, then its
// eval_mc result (eval/<stage>-mc.json) copied and metrics.jsonl written with the donor's lines of those stages. An interruption leaves each stage directory
// complete or absent.
func shareStages(r, donor *Run, stages []string) error {
	src, dst := rundir.Dir(donor.Dir), rundir.Dir(r.Dir)
	for i, s := range stages { // what the donor trained on is what this run would train on now
		changes, err := r.Config.DataChanges(&r.Config.Stages[i], src.Stage(s))
		if err != nil {
			return fmt.Errorf("run %s: checking the data of stage %s against %s's: %w", r.Name(), s, donor.Name(), err)
		}
		if len(changes) > 0 {
			return fmt.Errorf("run %s would be given stage %s of %s, which was trained on other data than the stage's "+
				"inputs now:\n  %s\nrestore the inputs, or remove the runs trained on the old data to train them again",
				r.Name(), s, donor.Name(), strings.Join(changes, "\n  "))
		}
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return err
	}
	for _, s := range stages {
		if _, err := os.Stat(dst.Done(s)); err == nil {
			continue // shared before an interruption
		}
		tmp, err := atomicfile.TempDir(dst.Stage(s))
		if err != nil {
			return err
		}
		built := filepath.Join(tmp, s)
		if err := copyTree(src.Stage(s), built, src.Output(s)); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("sharing stage %s of %s: %w", s, donor.Name(), err)
		}
		sum, err := rundir.ReadStageSummary(src.Done(s))
		if err != nil {
			os.RemoveAll(tmp)
			return err
		}
		sum.Output = dst.Output(s)
		if sum.SharedFrom == "" { // else the donor was given it too: name where it was trained
			sum.SharedFrom = donor.Dir
		}
		for _, name := range []string{rundir.StageSummaryFile, rundir.DoneFile} {
			if err := rundir.WriteJSON(filepath.Join(built, name), sum); err != nil {
				os.RemoveAll(tmp)
				return err
			}
		}
		err = atomicfile.PublishDir(built, dst.Stage(s))
		os.RemoveAll(tmp)
		if err != nil {
			return err
		}
	}
	for _, s := range stages { // the stages' end-of-stage multiple choice, kept outside their directories
		b, err := os.ReadFile(src.MCResult(s))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst.MCResult(s)), 0o755); err != nil {
			return err
		}
		if err := rundir.WriteFile(dst.MCResult(s), b); err != nil {
			return err
		}
	}
	lines, err := stageLines(src.Metrics(), stages)
	if err != nil {
		return err
	}
	return rundir.WriteFile(dst.Metrics(), lines)
}

// stageLines returns the lines of metrics.jsonl at path whose "stage" is one of stages.
func stageLines(path string, stages []string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var rec struct {
			Stage string `json:"stage"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && slices.Contains(stages, rec.Stage) {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), sc.Err()
}

// copyTree copies the directory src to dst (which must not exist): the files under link are hard-linked (a
// stage's output, never written again once the stage is done; copied where links are not possible), the others
// copied. Symbolic links are refused.
func copyTree(src, dst, link string) error {
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symbolic link", p)
		case e.IsDir():
			return os.Mkdir(to, 0o755)
		case !e.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", p)
		}
		if under(p, link) && os.Link(p, to) == nil {
			return nil
		}
		return atomicfile.CopyFile(p, to)
	})
}

func under(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
