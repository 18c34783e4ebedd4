package train

import (
	"context"
	"errors"
	"time"
)

// A stop (SIGTERM or SIGUSR1, through Env.Stop) is honoured where the files of the run are complete and every
// process is at the same point, so that all processes return ErrStopped together: a process that leaves alone is a
// failed task to the launcher, and the others would wait for it until the timeout. The points are
//
//   - before the model is built (a signal that came while the processes joined: nothing is written yet but the
//     resolved config),
//   - during a stage's data preparation: rank 0 abandons it (prep publishes its datasets only when they are
//     complete and removes its temporary directory), and the processes agree after the barrier that ends it,
//   - before the first step of a stage in this process (the last checkpoint, if any, is already what a re-run
//     resumes from: nothing new to save),
//   - after any step, once a checkpoint is saved (stageRun.loop).
//
// Whenever rank 0 writes something that the others wait for (prepared data, a checkpoint, a stage's output and
// evaluations), they wait in a barrier that blocks the host on every backend (torch.ProcessGroup.Barrier), so no
// process goes on, or exits with ErrStopped, while rank 0 is still writing.

// stopped reports whether this process was asked to stop.
func (e Env) stopped() bool { return e.Stop != nil && e.Stop.Load() }

// errStopRequested is the cause of a context cancelled by stopContext.
var errStopRequested = errors.New("train: stop requested")

// stopContext returns a context that is also cancelled, with cause errStopRequested, when this process is asked to
// stop: work that can be abandoned (data preparation) ends early, while the training loop, which stops only after
// a checkpoint, ignores that cause. cancel releases it.
func stopContext(ctx context.Context, env Env) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	if env.Stop == nil {
		return ctx, func() { cancel(nil) }
	}
	if env.stopped() {
		cancel(errStopRequested)
		return ctx, func() {}
	}
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if env.stopped() {
					cancel(errStopRequested)
					return
				}
			}
		}
	}()
	return ctx, func() { cancel(nil) }
}

// cancelled returns ctx's error unless it was cancelled on a stop request (or not at all).
func cancelled(ctx context.Context) error {
	if ctx.Err() == nil || context.Cause(ctx) == errStopRequested {
		return nil
	}
	return ctx.Err()
}

// stopErr is the error of a stop agreement: err if it failed, else ErrStopped if stop.
func stopErr(stop bool, err error) error {
	if err != nil {
		return err
	}
	if stop {
		return ErrStopped
	}
	return nil
}
