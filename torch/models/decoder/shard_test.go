package decoder

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/dist"
	"github.com/msmtrain/msmtrain/torch/testenv"
)

// TestSharded: 2 and 3 processes over Gloo each hold 1/world of every base weight of a model of each family and
// compute, on their own (different) batches, the loss, the log-probabilities and cached decoding of the unsharded
// model within 1e-6, and its gradients: the LoRA ones (1e-6), or in full fine-tuning each slice's, the sum over
// the ranks (1e-5); a rank whose batch has no target still takes part in every collective; Save of a sharded model
// writes the unsharded one.
func TestSharded(t *testing.T) {
	if testenv.IsWorker() {
		t.Skip("this process is one of the workers that TestSharded starts")
	}
	for _, world := range []int{2, 3} {
		t.Run(fmt.Sprint(world), func(t *testing.T) { testenv.StartWorkers(t, "TestShardedWorker", world, "MSM_SHARD_DIR="+t.TempDir()) })
	}
}

func TestShardedWorker(t *testing.T) {
	if !testenv.IsWorker() {
		t.Skip("runs only as a child process of TestSharded")
	}
	// One OS thread for every libtorch call, as msmtrain does: the order in which backward runs the nodes that are
	// ready together, and so the order of the gradient collectives, follows libtorch's per-thread sequence numbers.
	// Built from calls on varying threads, a rank's graph can order them differently from the others' and the ranks
	// deadlock (seen in CI: one rank gathering a layer for its recompute while the others all-reduced a gradient).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	env, err := dist.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := dist.Init(env, "gloo", torch.CPU, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	names := []string{}
	for n := range tinyConfigs() {
		names = append(names, n)
	}
	sort.Strings(names) // every rank builds the models in the same order
	for _, name := range names {
		c := tinyConfigs()[name]
		lora := &LoRAConfig{Rank: 4, Alpha: 8, Targets: AllProjections}
		ref, err := New(c, Options{DType: torch.Float32, LoRA: lora, Checkpoint: true, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		randomize(t, ref, 9)
		dir, adir := t.TempDir(), t.TempDir()
		if err := ref.Save(dir); err != nil {
			t.Fatal(err)
		}
		if err := ref.SaveAdapter(adir, "base"); err != nil {
			t.Fatal(err)
		}
		sh, err := Load(dir, Options{DType: torch.Float32, Adapter: adir, Checkpoint: true, Shard: pg})
		if err != nil {
			t.Fatal(err)
		}
		whole, mine := int64(0), int64(0)
		for _, w := range ref.weights() {
			whole += numel(w.shape) * 4
		}
		for _, u := range sh.units {
			mine += u.shard.Numel() * 4
		}
		if float64(mine) > float64(whole)/float64(env.World)*1.1+64 {
			t.Fatalf("%s: rank %d holds %d bytes of base weights, the whole model %d", name, env.Rank, mine, whole)
		}
		compareSharded(t, name, env.Rank, c, ref, sh)
		fmt.Printf("%s: rank %d of %d holds %d of %d bytes of base weights\n", name, env.Rank, env.World, mine, whole)
		sh.Free()
		ref.Free()

		// full fine-tuning: the slices are trainable, their gradients the sum over the ranks of the whole ones
		full, err := Load(dir, Options{DType: torch.Float32, Checkpoint: true})
		if err != nil {
			t.Fatal(err)
		}
		shf, err := Load(dir, Options{DType: torch.Float32, Checkpoint: true, Shard: pg})
		if err != nil {
			t.Fatal(err)
		}
		compareSharded(t, name+" full", env.Rank, c, full, shf)
		compareShardGrads(t, name, pg, full, shf)
		// Save gathers the units: rank 0 writes the same model
		saved := filepath.Join(os.Getenv("MSM_SHARD_DIR"), name)
		if err := shf.Save(saved); err != nil {
			t.Fatal(err)
		}
		if err := pg.Barrier(); err != nil {
			t.Fatal(err)
		}
		back, err := Load(saved, Options{DType: torch.Float32})
		if err != nil {
			t.Fatal(err)
		}
		bw := back.weights()
		for i, w := range full.weights() {
			if d := maxAbsDiff(t, *w.t, *bw[i].t); d != 0 {
				t.Fatalf("%s: saved %s differs by %g", name, w.name, d)
			}
		}
		back.Free()
		shf.Free()
		full.Free()
	}
	fmt.Println("WORKER OK")
}

// compareShardGrads checks each slice's gradient against the sum over the ranks of the unsharded model's whole
// gradients (after compareSharded's backward on each rank's own batch).
func compareShardGrads(t *testing.T, name string, pg *torch.ProcessGroup, full, sh *Model) {
	t.Helper()
	ps := sh.Params()
	for k, g := range full.unitWeights() {
		var parts []*torch.Tensor
		for _, w := range g.ws {
			gr := (*w.t).Grad()
			if gr == nil { // unused by this rank's loss (a head without targets)
				gr = torch.Zeros(torch.Float32, torch.CPU, w.shape...)
			}
			parts = append(parts, gr.Reshape(-1))
		}
		n := ps[k].Tensor.Numel()
		if pad := n*int64(pg.World) - ps[k].Whole; pad > 0 {
			parts = append(parts, torch.Zeros(torch.Float32, torch.CPU, pad))
		}
		flat := torch.Cat(parts, 0).Contiguous()
		if err := pg.AllReduce([]*torch.Tensor{flat}, torch.ReduceOpSum); err != nil {
			t.Fatal(err)
		}
		if ps[k].Name != g.name || ps[k].Decay != g.decay {
			t.Fatalf("%s: param %d is %s (decay %v), unit %s (%v)", name, k, ps[k].Name, ps[k].Decay, g.name, g.decay)
		}
		if d := maxAbsDiff(t, flat.Narrow(0, int64(pg.Rank)*n, n), ps[k].Tensor.Grad()); d > 1e-5 {
			t.Fatalf("%s rank %d: gradient of %s differs by %g", name, pg.Rank, g.name, d)
		}
	}
}

// compareSharded runs the same rank-specific batches through both models.
func compareSharded(t *testing.T, name string, rank int, c Config, ref, sh *Model) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(rank), 3))
	const B, T = 2, 7
	ids, pos, seg, tgt := make([]int64, B*T), make([]int64, B*T), make([]int64, B*T), make([]int64, B*T)
	for i := range ids {
		ids[i], pos[i], seg[i], tgt[i] = int64(r.IntN(c.VocabSize)), int64(i%T), 1, int64(r.IntN(c.VocabSize))
		if rank == 1 { // no target at all on this rank: it must still gather what the others gather
			tgt[i] = -100
		}
	}
	in := func() (a, b, s, g *torch.Tensor) {
		return torch.FromInt64s(ids, B, T), torch.FromInt64s(pos, B, T), torch.FromInt64s(seg, B, T), torch.FromInt64s(tgt, B, T)
	}
	losses := [2]float64{}
	for k, m := range []*Model{ref, sh} {
		s := torch.NewScope()
		a, b, sg, g := in()
		loss := m.Loss(a, b, sg, g, nil)
		if err := loss.Backward(nil); err != nil {
			t.Fatalf("%s: backward: %v", name, err)
		}
		v, err := loss.Item()
		if err != nil {
			t.Fatal(err)
		}
		losses[k] = v
		s.Close()
	}
	if math.Abs(losses[0]-losses[1]) > 1e-6*math.Max(1, math.Abs(losses[0])) {
		t.Fatalf("%s rank %d: loss %v unsharded, %v sharded", name, rank, losses[0], losses[1])
	}
	if ref.LoRA() != nil {
		rp, sp := ref.Params(), sh.Params()
		for i := range rp {
			if d := maxAbsDiff(t, rp[i].Tensor.Grad(), sp[i].Tensor.Grad()); d > 1e-6 {
				t.Fatalf("%s rank %d: grad of %s differs by %g", name, rank, rp[i].Name, d)
			}
		}
	}
	a, b, sg, g := in()
	if d := maxAbsDiff(t, ref.LogProbs(a, b, sg, g), sh.LogProbs(a, b, sg, g)); d > 1e-6 {
		t.Fatalf("%s rank %d: log-probabilities differ by %g", name, rank, d)
	}
	var logits [2]*torch.Tensor
	for k, m := range []*Model{ref, sh} {
		cache, err := m.NewCache(B, T)
		if err != nil {
			t.Fatal(err)
		}
		logits[k] = m.ForwardCached(a.Narrow(1, 0, 4), b.Narrow(1, 0, 4), sg.Narrow(1, 0, 4), cache)
		cache.Free()
	}
	if d := maxAbsDiff(t, logits[0], logits[1]); d > 1e-5 {
		t.Fatalf("%s rank %d: cached logits differ by %g", name, rank, d)
	}
}

func maxAbsDiff(t *testing.T, a, b *torch.Tensor) float64 {
	t.Helper()
	x, err := a.To(torch.Float32).Float32s()
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.To(torch.Float32).Float32s()
	if err != nil {
		t.Fatal(err)
	}
	d := 0.0
	for i := range x {
		d = math.Max(d, math.Abs(float64(x[i]-y[i])))
	}
	return d
}

// TestShardedRefused: sharding needs activation checkpointing, and a sharded base cannot be merged into.
func TestShardedRefused(t *testing.T) {
	c := tinyConfigs()["qwen3"]
	pg := &torch.ProcessGroup{World: 2}
	if _, err := New(c, Options{DType: torch.Float32, LoRA: &LoRAConfig{Rank: 2, Alpha: 2, Targets: AllProjections}, Shard: pg}); err == nil ||
		!strings.Contains(err.Error(), "checkpointing") {
		t.Fatalf("sharded without checkpointing: %v", err)
	}
}
