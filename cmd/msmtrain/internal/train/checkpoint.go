package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/torch"
)

// A checkpoint is a directory RUN/checkpoints/<stage>-step<NNNNNNNN>/ holding
//
//	trainable.safetensors   the trainable weights (LoRA weights, or every weight in full fine-tuning)
//	optimizer.safetensors   AdamW's moments, by parameter name
//	state.json              step, loader states of every rank, RNG states, counters, config hash
//
// It is written under a temporary name, every file fsynced, then renamed into place and the parent fsynced, so a
// crash during a save leaves the previous checkpoint intact (and a .tmp directory that the next run removes).

// ckptState is state.json.
type ckptState struct {
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
	Counters   counters       `json:"counters"`
}

// counters are the running totals that metrics report.
type counters struct {
	Tokens   int64   `json:"tokens"`  // non-padding tokens processed
	Trained  int64   `json:"trained"` // target tokens with loss
	Skipped  int     `json:"skipped_steps"`
	Seconds  float64 `json:"seconds"`
	LastLoss float64 `json:"last_loss"`
}

const ckptVersion = 1

func ckptName(stage string, step int) string { return fmt.Sprintf("%s-step%08d", stage, step) }

// listCheckpoints returns the complete checkpoints of stage in dir, oldest first.
func listCheckpoints(dir, stage string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type ck struct {
		name string
		step int
	}
	var cks []ck
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || !strings.HasPrefix(n, stage+"-step") {
			continue
		}
		step, err := strconv.Atoi(strings.TrimPrefix(n, stage+"-step"))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, n, "state.json")); err != nil {
			continue
		}
		cks = append(cks, ck{n, step})
	}
	sort.Slice(cks, func(i, j int) bool { return cks[i].step < cks[j].step })
	out := make([]string, len(cks))
	for i, c := range cks {
		out[i] = filepath.Join(dir, c.name)
	}
	return out, nil
}

// removeTemps deletes directories left by saves that were interrupted.
func removeTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// saveCheckpoint writes a checkpoint atomically and prunes older ones beyond keep.
func saveCheckpoint(dir string, st ckptState, trainable, optState map[string]*torch.Tensor, keep int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	final := filepath.Join(dir, ckptName(st.Stage, st.Step))
	tmp, err := os.MkdirTemp(dir, ".tmp-"+ckptName(st.Stage, st.Step)+"-")
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := torch.SaveFile(filepath.Join(tmp, "trainable.safetensors"), trainable, map[string]string{"format": "pt"}); err != nil {
		return fail(err)
	}
	if err := torch.SaveFile(filepath.Join(tmp, "optimizer.safetensors"), optState, nil); err != nil {
		return fail(err)
	}
	st.Version = ckptVersion
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := writeFileSync(filepath.Join(tmp, "state.json"), b); err != nil {
		return fail(err)
	}
	if err := syncDir(tmp); err != nil {
		return fail(err)
	}
	if _, err := os.Stat(final); err == nil {
		// A checkpoint of the same step exists (a re-run after a crash right after it was saved): replace it.
		old := final + ".old"
		os.RemoveAll(old)
		if err := os.Rename(final, old); err != nil {
			return fail(err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	all, err := listCheckpoints(dir, st.Stage)
	if err == nil && len(all) > keep {
		for _, p := range all[:len(all)-keep] {
			os.RemoveAll(p)
		}
	}
	return final, nil
}

func readCkptState(path string) (ckptState, error) {
	var st ckptState
	b, err := os.ReadFile(filepath.Join(path, "state.json"))
	if err != nil {
		return st, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("checkpoint: %s/state.json: %w", path, err)
	}
	if st.Version != ckptVersion {
		return st, fmt.Errorf("checkpoint: %s: version %d, this msmtrain reads %d", path, st.Version, ckptVersion)
	}
	return st, nil
}

// writeFileSync writes a file and fsyncs it; a symbolic link at path is refused (see OpenRunFile).
func writeFileSync(path string, b []byte) error {
	f, err := OpenRunFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeFileAtomic replaces path with b: a temporary file in the same directory, fsync, rename, fsync of the dir.
// A path that is a symbolic link is refused rather than replaced.
func writeFileAtomic(path string, b []byte) error {
	if err := notSymlink(path); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, b); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
