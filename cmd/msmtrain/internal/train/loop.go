package train

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// stageRun is the state of one stage's optimisation.
type stageRun struct {
	cfg         *Config
	st          *Stage
	idx         int
	model       Model
	opt         *optim.AdamW
	sched       optim.Schedule
	ld          *loader.Loader
	val         *shard.Dataset
	lcfg        loader.Config
	accum       int
	total       int
	env         Env
	rank, world int
	hash        string

	step      int // optimizer steps completed
	counters  rundir.Counters
	metrics   *recorder
	con       *console
	stepsHere int // steps run by this process (for Env.StopAfter)
}

func (r *stageRun) loop(ctx context.Context) error {
	t := r.st.Train
	flops := r.model.FLOPsPerToken(t.SeqLen)
	peak := peakTFLOPS(r.cfg.Model.PeakTFLOPS, r.env.Device) * 1e12
	// a stop that came before this process's first step of the stage (model loading, the stage switch, setup):
	// the latest checkpoint, if any, is where a re-run resumes, so there is nothing new to save
	if stop, err := agreeStop(r.env); err != nil {
		return err
	} else if stop {
		if r.rank == 0 {
			r.con.printf("stage %s: stop requested before step %d; nothing new to save\n", r.st.Name, r.step+1)
		}
		return ErrStopped
	}
	if r.cfg.Eval.AtStart && r.step == 0 && r.val != nil {
		if _, err := r.evaluate(); err != nil {
			return err
		}
	}
	for r.step < r.total {
		if err := cancelled(ctx); err != nil { // a stop request is honoured after the step, with a checkpoint
			return err
		}
		t0 := time.Now()
		res, err := r.trainStep()
		if err != nil {
			return fmt.Errorf("stage %s step %d: %w", r.st.Name, r.step+1, err)
		}
		if err := torch.Synchronize(r.env.Device); err != nil {
			return err
		}
		dt := time.Since(t0).Seconds()
		if res.nonFinite && t.NonFinite == "stop" {
			if _, err := r.checkpoint(); err != nil {
				return err
			}
			return fmt.Errorf("stage %s step %d: non-finite gradients (nonfinite = \"stop\"); checkpoint of step %d saved",
				r.st.Name, r.step+1, r.step)
		}
		r.step++
		r.stepsHere++
		r.counters.Tokens += res.tokens
		r.counters.Trained += res.trained
		r.counters.Seconds += dt
		if res.nonFinite {
			r.counters.Skipped++
		} else {
			r.counters.LastLoss = res.loss
		}
		if r.rank == 0 {
			rec := rundir.TrainRecord{Kind: "train", Stage: r.st.Name, Step: r.step, Loss: rundir.Float(res.loss), LR: res.lr, GradNorm: rundir.Float(res.gradNorm),
				Tokens: r.counters.Tokens, Trained: r.counters.Trained, TokensPerS: float64(res.tokens) / dt,
				MemBytes: memBytes(r.env.Device), Skipped: res.nonFinite, Time: time.Now().UTC().Format(time.RFC3339)}
			if peak > 0 {
				rec.MFU = flops * rec.TokensPerS / (peak * float64(r.world))
			}
			if err := r.metrics.train(rec); err != nil {
				return err
			}
			r.con.step(rec)
		}
		if ev := r.cfg.Eval.Every; ev > 0 && r.step%ev == 0 && r.step < r.total && r.val != nil {
			if _, err := r.evaluate(); err != nil {
				return err
			}
		}
		stop, err := r.stopRequested()
		if err != nil {
			return err
		}
		ce := r.cfg.Checkpoint.Every
		if stop || (ce > 0 && r.step%ce == 0 && r.step < r.total) {
			path, err := r.checkpoint()
			if err != nil {
				return err
			}
			if stop {
				if r.rank == 0 {
					r.con.printf("stage %s: stop requested; checkpoint %s saved\n", r.st.Name, path)
				}
				return ErrStopped
			}
		}
	}
	return nil
}

// stopRequested agrees across processes on whether to stop now (any process got the signal).
func (r *stageRun) stopRequested() (bool, error) {
	local := (r.env.Stop != nil && r.env.Stop.Load()) || (r.env.StopAfter > 0 && r.stepsHere >= r.env.StopAfter)
	if r.env.PG == nil {
		return local, nil
	}
	v := 0.0
	if local {
		v = 1
	}
	x, err := r.allReduce([]float64{v}, torch.ReduceOpMax)
	if err != nil {
		return false, err
	}
	return x[0] != 0, nil
}

type stepResult struct {
	loss, lr, gradNorm float64
	tokens, trained    int64
	nonFinite          bool
}

// trainStep runs one optimizer step: accum micro-batches per process, loss normalised by the global count of
// trained target tokens, gradients summed across processes, clipping, AdamW.
func (r *stageRun) trainStep() (stepResult, error) {
	var res stepResult
	batches := make([]*loader.Batch, 0, r.accum)
	var tokens, trained int64
	for i := 0; i < r.accum; i++ {
		b, err := r.ld.Next()
		if err != nil {
			return res, err
		}
		batches = append(batches, b)
		tokens += int64(b.Tokens)
		trained += int64(b.Trained)
	}
	counts, err := r.allSum([]float64{float64(tokens), float64(trained)})
	if err != nil {
		return res, err
	}
	res.tokens, res.trained = int64(counts[0]), int64(counts[1])
	res.lr = r.sched.LR(r.step)
	if res.trained == 0 {
		res.nonFinite = false
		return res, nil // nothing to learn from (all padding): no update
	}
	inv := 1 / counts[1]
	lossSum := 0.0
	dev := r.env.Device
	for _, b := range batches {
		s := torch.NewScope()
		in := batchTensors(b, dev)
		loss := r.model.Loss(in.ids, in.pos, in.seg, in.tgt, in.w)
		if err := loss.MulScalar(inv).Backward(nil); err != nil {
			s.Close()
			return res, err
		}
		v, err := loss.Item()
		s.Close()
		if err != nil {
			return res, err
		}
		lossSum += v
	}
	params := r.opt.Tensors()
	if r.env.PG != nil {
		if err := r.allReduceGrads(params); err != nil {
			return res, err
		}
		l, err := r.allSum([]float64{lossSum})
		if err != nil {
			return res, err
		}
		lossSum = l[0]
	}
	res.loss = lossSum * inv
	var norm float64
	if r.st.Train.ClipNorm > 0 {
		norm, err = torch.ClipGradNorm(params, r.st.Train.ClipNorm)
	} else {
		norm, err = torch.GradNorm(params)
	}
	if err != nil {
		return res, err
	}
	res.gradNorm = norm
	if math.IsNaN(norm) || math.IsInf(norm, 0) || math.IsNaN(res.loss) || math.IsInf(res.loss, 0) {
		res.nonFinite = true
		return res, r.opt.ZeroGrad()
	}
	if err := r.opt.Step(res.lr); err != nil {
		return res, err
	}
	return res, r.opt.ZeroGrad()
}

type batchIn struct{ ids, pos, seg, tgt, w *torch.Tensor }

// batchTensors puts a loader batch on dev as (B, T) tensors: int64 ids, positions, segment ids and targets, and
// float32 weights.
func batchTensors(b *loader.Batch, dev torch.Device) batchIn {
	shape := []int64{int64(b.Rows), int64(b.SeqLen)}
	i64 := func(v []int32) *torch.Tensor {
		t := torch.FromInt32s(v, shape...)
		return t.To(torch.Int64).ToDevice(dev)
	}
	w := torch.FromFloat32s(b.Weight, shape...).ToDevice(dev)
	return batchIn{ids: i64(b.Input), pos: i64(b.Pos), seg: i64(b.DocID), tgt: i64(b.Target), w: w}
}

// allSum sums small values across processes (float64, exact for counts below 2^53).
func (r *stageRun) allSum(v []float64) ([]float64, error) { return r.allReduce(v, torch.ReduceOpSum) }

// allReduce reduces small values across the processes of the stage.
func (r *stageRun) allReduce(v []float64, op torch.ReduceOp) ([]float64, error) {
	return reduceSmall(r.env, v, op)
}

// reduceSmall reduces small values across processes, on the training device (NCCL reduces only CUDA tensors). The
// result is read back to the host, so the call returns only once every process has contributed.
func reduceSmall(env Env, v []float64, op torch.ReduceOp) ([]float64, error) {
	if env.PG == nil {
		return v, nil
	}
	s := torch.NewScope()
	defer s.Close()
	t := torch.FromFloat64s(v).ToDevice(env.Device)
	if err := t.Err(); err != nil {
		return nil, err
	}
	if err := env.PG.AllReduce([]*torch.Tensor{t}, op); err != nil {
		return nil, err
	}
	return t.Float64s()
}

// bucketBytes bounds one gradient all-reduce: large enough to amortise latency, small enough not to double
// memory for full fine-tuning.
const bucketBytes = 64 << 20

// allReduceGrads sums gradients across processes in buckets.
func (r *stageRun) allReduceGrads(params []*torch.Tensor) error {
	s := torch.NewScope()
	defer s.Close()
	var bucket []*torch.Tensor
	var size int64
	flush := func() error {
		if len(bucket) == 0 {
			return nil
		}
		err := r.env.PG.AllReduce(bucket, torch.ReduceOpSum)
		bucket, size = bucket[:0], 0
		return err
	}
	for _, p := range params {
		g := p.Grad()
		if g == nil {
			continue
		}
		if err := g.Err(); err != nil {
			return err
		}
		bucket = append(bucket, g)
		size += g.Numel() * int64(g.DType().Size())
		if size >= bucketBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// broadcastParams makes every process start from rank 0's trainable weights.
func (r *stageRun) broadcastParams() error {
	if r.env.PG == nil {
		return nil
	}
	return r.env.PG.Broadcast(r.opt.Tensors(), 0)
}

// evaluate computes the held-out loss per trained token over the validation set (all processes share it) and logs it.
func (r *stageRun) evaluate() (float64, error) {
	cfg := r.lcfg
	vl, err := loader.New(r.val, cfg, nil)
	if err != nil {
		return 0, err
	}
	defer vl.Close()
	n := vl.StepsPerEpoch(0)
	if m := r.cfg.Eval.MaxBatches; m > 0 && n > m {
		n = m
	}
	// With several sources, each source's tokens are scored on their own (one forward pass per source present in
	// a batch): sums[2s] and sums[2s+1] are source s's loss sum and token count. With one, the whole batch is.
	sources := r.val.Sources()
	per := len(sources) > 1
	sums := make([]float64, 2*max(len(sources), 1))
	var err2 error
	torch.NoGrad(func() {
		for i := 0; i < n; i++ {
			b, err := vl.Next()
			if err != nil {
				err2 = err
				return
			}
			if b.Trained == 0 {
				continue
			}
			parts := []evalPart{{0, b.Weight, b.Trained}}
			if per {
				if parts, err = splitBySource(b, r.val); err != nil {
					err2 = err
					return
				}
			}
			for _, p := range parts {
				s := torch.NewScope()
				in := batchTensors(b, r.env.Device)
				w := torch.FromFloat32s(p.weight, int64(b.Rows), int64(b.SeqLen)).ToDevice(r.env.Device)
				v, err := r.model.Loss(in.ids, in.pos, in.seg, in.tgt, w).Item()
				s.Close()
				if err != nil {
					err2 = err
					return
				}
				sums[2*p.source] += v
				sums[2*p.source+1] += float64(p.trained)
			}
		}
	})
	if err2 != nil {
		return 0, err2
	}
	sums, err = r.allSum(sums)
	if err != nil {
		return 0, err
	}
	var lossSum, tokens float64
	for s := 0; s < len(sums); s += 2 {
		lossSum, tokens = lossSum+sums[s], tokens+sums[s+1]
	}
	if tokens == 0 {
		return 0, nil
	}
	loss := lossSum / tokens
	if r.rank == 0 {
		rec := rundir.EvalRecord{Kind: rundir.KindEval, Stage: r.st.Name, Step: r.step, EvalLoss: rundir.Float(loss),
			EvalPPL: rundir.Float(math.Exp(loss)), Tokens: int64(tokens), Time: time.Now().UTC().Format(time.RFC3339)}
		if per {
			rec.BySource = map[string]rundir.SourceLoss{}
			for s, name := range sources {
				if t := sums[2*s+1]; t > 0 {
					rec.BySource[name] = rundir.SourceLoss{Loss: rundir.Float(sums[2*s] / t), Tokens: int64(t)}
				}
			}
		}
		if err := r.metrics.eval(rec); err != nil {
			return 0, err
		}
		if r.con != nil {
			r.con.printf("%s step %d: eval loss %.4f (ppl %.2f, %d tokens)%s\n", r.st.Name, r.step, loss, float64(rec.EvalPPL),
				rec.Tokens, bySourceText(rec.BySource))
		}
	}
	return loss, nil
}

// evalPart is the trained tokens of one source in a batch: weight is the batch's weights restricted to them.
type evalPart struct {
	source  int
	weight  []float32
	trained int
}

// splitBySource splits a batch's trained tokens by the source of their documents.
func splitBySource(b *loader.Batch, ds *shard.Dataset) ([]evalPart, error) {
	bySrc := map[int]*evalPart{}
	var order []int
	for _, seg := range b.Segments {
		src, err := ds.DocSource(seg.Doc)
		if err != nil {
			return nil, err
		}
		p, ok := bySrc[src]
		if !ok {
			p = &evalPart{source: src, weight: make([]float32, len(b.Weight))}
			bySrc[src] = p
			order = append(order, src)
		}
		off := seg.Row*b.SeqLen + seg.Start
		for i := off; i < off+seg.Len; i++ {
			if b.Weight[i] != 0 {
				p.weight[i] = b.Weight[i]
				p.trained++
			}
		}
	}
	parts := make([]evalPart, 0, len(order))
	for _, s := range order {
		if bySrc[s].trained > 0 {
			parts = append(parts, *bySrc[s])
		}
	}
	return parts, nil
}

// bySourceText renders per-source losses for the console: "; by source: a 2.1000, b 2.3000".
func bySourceText(m map[string]rundir.SourceLoss) string {
	if len(m) == 0 {
		return ""
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := "; by source:"
	for i, k := range names {
		if i > 0 {
			out += ","
		}
		out += fmt.Sprintf(" %s %.4f", k, float64(m[k].Loss))
	}
	return out
}

// checkpoint saves the training state (rank 0 writes; every rank contributes its data-loader state).
func (r *stageRun) checkpoint() (string, error) {
	states, err := r.gatherLoaderStates()
	if err != nil {
		return "", err
	}
	path := ""
	if r.rank == 0 {
		rng, err := (*torch.Generator)(nil).State()
		if err != nil {
			return "", err
		}
		st := rundir.CheckpointState{Stage: r.st.Name, Step: r.step, OptSteps: r.opt.Steps(), Total: r.total, ConfigHash: r.hash, Loaders: states, RNG: rng,
			Counters: r.counters}
		if r.env.Device.IsCUDA() {
			if st.RNGCUDA, err = torch.CUDARNGState(r.env.Device.Index); err != nil {
				return "", err
			}
		}
		if g, ok := r.model.(dropoutRNG); ok {
			if st.LoRARNG, err = g.DropoutRNGState(); err != nil {
				return "", err
			}
		}
		trainable := map[string]*torch.Tensor{}
		for _, p := range r.model.Params() {
			trainable[p.Name] = p.Tensor
		}
		path, err = saveCheckpoint(filepath.Join(r.cfg.OutDir, "checkpoints"), st, trainable, r.opt.State(), r.cfg.Checkpoint.Keep)
		if err != nil {
			return "", err
		}
	}
	// no process goes on (or exits on a stop) before the checkpoint is durable
	if err := waitRank0(r.env, fmt.Sprintf("rank 0 to save the checkpoint of stage %s step %d", r.st.Name, r.step)); err != nil {
		return "", err
	}
	return path, nil
}
