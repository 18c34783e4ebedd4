package dist

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/testenv"
)

func TestFromEnv(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want Env
		err  string
	}{
		{"single", nil, Env{World: 1, Source: "single", MasterAddr: "127.0.0.1", MasterPort: 29500}, ""},
		{"torchrun", map[string]string{"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "3", "MASTER_ADDR": "n1", "MASTER_PORT": "1234"},
			Env{3, 8, 3, "n1", 1234, "torchrun"}, ""},
		{"slurm", map[string]string{"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "gpu[007-008]", "SLURM_JOB_ID": "123456"},
			Env{5, 8, 1, "gpu007", 20000 + 123456%20000, "slurm"}, ""},
		{"slurm master override", map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "4000"},
			Env{0, 2, 0, "10.0.0.1", 4000, "slurm"}, ""},
		{"bad rank", map[string]string{"RANK": "x", "WORLD_SIZE": "2"}, Env{}, "RANK=\"x\""},
		{"rank too big", map[string]string{"RANK": "2", "WORLD_SIZE": "2"}, Env{}, "outside world size"},
		{"bad port", map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "70000"}, Env{}, "out of range"},
		{"slurm no nodelist", map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, Env{}, "set MASTER_ADDR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := FromEnv(func(k string) string { return c.env[k] })
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestFirstHost(t *testing.T) {
	for in, want := range map[string]string{
		"node1": "node1", "a,b": "a", "gpu[003-005,9],login1": "gpu003", "x[1,2]": "x1", "rack[01-02]-gpu": "rack01-gpu",
		"c[10-12].cluster,d1": "c10.cluster",
	} {
		if got, err := FirstHost(in); err != nil || got != want {
			t.Errorf("FirstHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x]1[", "y[]"} {
		if _, err := FirstHost(bad); err == nil {
			t.Errorf("FirstHost(%q): no error", bad)
		}
	}
}

// startWorkers runs this test binary's test named worker as world processes joined over loopback.
func startWorkers(t *testing.T, worker string, world int, env ...string) {
	t.Helper()
	testenv.StartWorkers(t, worker, world, env...)
}

// workerGroup joins the group of a worker process started by startWorkers; other processes skip.
func workerGroup(t *testing.T, timeout time.Duration) (*torch.ProcessGroup, Env) {
	t.Helper()
	if os.Getenv("MSM_DIST_WORKER") == "" {
		t.Skip("runs only as a child process of the two-process tests")
	}
	env, err := FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := Init(env, "gloo", torch.CPU, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return pg, env
}

// TestTwoProcessGloo starts two processes of this test binary that join a Gloo group over loopback and run each
// collective; each worker checks its own results and the parent checks that both succeeded.
func TestTwoProcessGloo(t *testing.T) {
	if os.Getenv("MSM_DIST_WORKER") != "" {
		t.Skip("this process is one of the Gloo workers that TestTwoProcessGloo starts")
	}
	startWorkers(t, "TestDistWorker", 2)
}

func TestDistWorker(t *testing.T) {
	pg, env := workerGroup(t, 60*time.Second)
	defer pg.Close()
	r := float32(env.Rank)
	check := func(what string, x *torch.Tensor, want []float32) {
		t.Helper()
		got, err := x.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: rank %d got %v want %v", what, env.Rank, got, want)
			}
		}
	}
	// all-reduce a bucket of two tensors of different shapes
	a := torch.FromFloat32s([]float32{r + 1, 10 * (r + 1)})
	b := torch.FromFloat32s([]float32{r, r, r, r}, 2, 2)
	if err := pg.AllReduce([]*torch.Tensor{a, b}, torch.ReduceOpSum); err != nil {
		t.Fatal(err)
	}
	check("sum a", a, []float32{3, 30})
	check("sum b", b, []float32{1, 1, 1, 1})
	c := torch.FromFloat32s([]float32{r * 4})
	if err := pg.AllReduce([]*torch.Tensor{c}, torch.ReduceOpAvg); err != nil {
		t.Fatal(err)
	}
	check("avg", c, []float32{2})
	m := torch.FromFloat32s([]float32{r, -r})
	if err := pg.AllReduce([]*torch.Tensor{m}, torch.ReduceOpMax); err != nil {
		t.Fatal(err)
	}
	check("max", m, []float32{1, 0})
	d := torch.FromFloat32s([]float32{r + 5, r + 6})
	if err := pg.Broadcast([]*torch.Tensor{d}, 1); err != nil {
		t.Fatal(err)
	}
	check("broadcast", d, []float32{6, 7})
	g, err := pg.AllGather(torch.FromFloat32s([]float32{r * 100}))
	if err != nil {
		t.Fatal(err)
	}
	check("gather 0", g[0], []float32{0})
	check("gather 1", g[1], []float32{100})
	if err := pg.Barrier(); err != nil {
		t.Fatal(err)
	}
	fmt.Println("WORKER OK")
}

// TestBarrierOrdering: what one process writes before a barrier is complete for the other after it, in both
// directions and over consecutive barriers (each a new generation of store keys), although the writer is slow;
// and a barrier that a rank never reaches fails after its timeout with an error naming that rank.
func TestBarrierOrdering(t *testing.T) {
	if os.Getenv("MSM_DIST_WORKER") != "" {
		t.Skip("this process is one of the workers that TestBarrierOrdering starts")
	}
	startWorkers(t, "TestBarrierWorker", 2, "MSM_BARRIER_DIR="+t.TempDir())
}

func TestBarrierWorker(t *testing.T) {
	pg, env := workerGroup(t, 60*time.Second)
	defer pg.Close()
	dir := os.Getenv("MSM_BARRIER_DIR")
	const chunks = 4
	chunk := strings.Repeat("x", 1000) + "\n"
	for round := 0; round < 4; round++ {
		path := filepath.Join(dir, fmt.Sprintf("round%d", round))
		writer := round % 2
		if env.Rank == writer {
			// slow and not atomic: a reader that does not wait for the whole write sees a part of it
			time.Sleep(300 * time.Millisecond)
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < chunks; i++ {
				f.WriteString(chunk)
				time.Sleep(50 * time.Millisecond)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := pg.Barrier(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		b, err := os.ReadFile(path)
		if err != nil || len(b) != chunks*len(chunk) {
			t.Fatalf("round %d, rank %d after the barrier: %d of %d bytes written by rank %d (%v)", round, env.Rank,
				len(b), chunks*len(chunk), writer, err)
		}
	}
	if env.Rank == 0 {
		// rank 1 has left: this barrier cannot complete
		start := time.Now()
		err := pg.BarrierTimeout(1500 * time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "rank 1 did not arrive") || !strings.Contains(err.Error(), "1.5s") {
			t.Fatalf("barrier without rank 1: %v", err)
		}
		if d := time.Since(start); d < 1500*time.Millisecond || d > 30*time.Second {
			t.Fatalf("barrier without rank 1 failed after %v, want 1.5s", d)
		}
		t.Logf("as expected: %v", err)
	}
	fmt.Println("WORKER OK")
}

// TestBarrierRankZeroLeavesLast: rank 0 serves the store, so when it exits right after a barrier (as every rank
// does after the checkpoint barrier of a stop) the other ranks must already be out of it. Rank 1 arrives first
// and polls slowly by then; rank 0 arrives just before the last rank, sees the barrier complete first and exits
// at once: rank 1 must still return without an error.
func TestBarrierRankZeroLeavesLast(t *testing.T) {
	if os.Getenv("MSM_DIST_WORKER") != "" {
		t.Skip("this process is one of the workers that TestBarrierRankZeroLeavesLast starts")
	}
	startWorkers(t, "TestBarrierExitWorker", 3)
}

func TestBarrierExitWorker(t *testing.T) {
	pg, env := workerGroup(t, 60*time.Second)
	if err := pg.Barrier(); err != nil { // all joined: the delays below start together
		t.Fatal(err)
	}
	time.Sleep([]time.Duration{400, 0, 420}[env.Rank] * time.Millisecond)
	if err := pg.Barrier(); err != nil {
		t.Fatalf("rank %d: %v", env.Rank, err)
	}
	fmt.Println("WORKER OK")
	if env.Rank == 0 {
		os.Exit(0) // the store goes with this process
	}
	time.Sleep(200 * time.Millisecond)
	pg.Close()
}

// TestShardGather: three processes each hold a third of a 7-element tensor (padded to 9); GatherShard gives every
// rank the whole tensor, and the gradient of sum(whole * (rank+1) * v) reaches each shard summed over the ranks:
// 6 v on its slice, 0 on the padding.
func TestShardGather(t *testing.T) {
	if os.Getenv("MSM_DIST_WORKER") != "" {
		t.Skip("this process is one of the Gloo workers that TestShardGather starts")
	}
	startWorkers(t, "TestShardGatherWorker", 3)
}

func TestShardGatherWorker(t *testing.T) {
	pg, env := workerGroup(t, 60*time.Second)
	defer pg.Close()
	whole := []float32{1, 2, 3, 4, 5, 6, 7, 0, 0}
	v := []float32{1, -1, 2, -2, 3, -3, 4}
	shard := torch.FromFloat32s(whole[3*env.Rank : 3*env.Rank+3])
	shard.SetRequiresGrad(true)
	full := pg.GatherShard(shard, 7)
	got, err := full.Detach().Float32s()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		if got[i] != whole[i] {
			t.Fatalf("rank %d gathered %v", env.Rank, got)
		}
	}
	loss := full.Mul(torch.FromFloat32s(v)).SumAll().MulScalar(float64(env.Rank + 1))
	if err := loss.Backward(nil); err != nil {
		t.Fatal(err)
	}
	g, err := shard.Grad().Float32s()
	if err != nil {
		t.Fatal(err)
	}
	for k := range 3 {
		want := float32(0)
		if i := 3*env.Rank + k; i < 7 {
			want = 6 * v[i]
		}
		if g[k] != want {
			t.Fatalf("rank %d: shard grad %v", env.Rank, g)
		}
	}
	var frozen *torch.Tensor // a shard without grad gathers without autograd
	torch.NoGrad(func() { frozen = pg.GatherShard(torch.FromFloat32s(whole[3*env.Rank:3*env.Rank+3]), 7) })
	if f, err := frozen.Float32s(); err != nil || f[6] != 7 {
		t.Fatalf("no-grad gather: %v %v", f, err)
	}
	fmt.Println("WORKER OK")
}
