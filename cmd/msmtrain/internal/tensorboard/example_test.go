package tensorboard_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/tensorboard"
)

func ExampleWriter() {
	run, err := os.MkdirTemp("", "run")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(run)

	// A new run logs from step 1; a run resumed from a checkpoint at step k passes k+1.
	w, err := tensorboard.NewWriter(filepath.Join(run, "tensorboard"), 1)
	if err != nil {
		log.Fatal(err)
	}
	for step := int64(1); step <= 3; step++ {
		now := time.Now()
		w.Scalar("train/loss", step, 2/float64(step), now)
		w.Scalar("train/lr", step, 1e-4, now)
	}
	if err := w.Flush(); err != nil { // at each logging interval
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(run, "tensorboard", "*tfevents*"))
	fmt.Println(len(files), "event file; view with: tensorboard --logdir", "RUN/tensorboard")
	// Output: 1 event file; view with: tensorboard --logdir RUN/tensorboard
}
