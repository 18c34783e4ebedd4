// Command msmtrain runs Model Spec Midtraining: prepare data, midtrain (MSM) on spec documents, fine-tune (AFT)
// on chat demonstrations, and evaluate, on one CPU or 1-8 GPUs per node.
//
// Usage:
//
//	msmtrain --config run.toml [--set section.key=value ...]   train: every stage of the config, resuming
//	msmtrain demo [--out DIR]                                  the CPU demo of the whole pipeline
//	msmtrain toyworld [--out DIR] [--seed N]                   write the toy value-generalization world and configs
//	msmtrain prep --config FILE                                JSONL sources -> token shards
//	msmtrain tokenize --tokenizer tokenizer.json < in.jsonl     {"text"} -> {"ids"} per line
//	msmtrain score --model DIR [--adapter DIR] --input FILE    {"ids"} -> {"logprobs"} per line
//	msmtrain generate --model DIR --input FILE --output FILE   sample responses (resumable JSONL)
//	msmtrain eval --model DIR (--data DIR | --mc F | --probes F) held-out loss per source, multiple choice, probes
//	msmtrain report RUN_DIR...                                 compare runs: report.md and loss.png
//	msmtrain experiment --config FILE [--out DIR]              arms x seeds: train, probe, compare with statistics
//	msmtrain plan --config FILE [--gpus N] [--gpu-memory GiB]  per-GPU memory of a config; exit 1 if it does not fit
//	msmtrain version                                            libtorch version and devices
//
// On a GPU node (one process per GPU; torchrun-style variables or Slurm's are read):
//
//	srun --ntasks-per-node=8 --gpus-per-node=8 msmtrain --config configs/qwen3-32b.toml
//	torchrun --nproc-per-node=8 --no-python msmtrain --config configs/qwen3-32b.toml
//
// A run directory holds the resolved config, metrics.jsonl, checkpoints/ and the outputs of each stage. Running the
// same command again resumes from the latest checkpoint; SIGTERM or SIGUSR1 (Slurm's --signal) saves one and exits.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/msmtrain/msmtrain/torch"
)

// version is the msmtrain version, set with -ldflags "-X main.version=..." by release builds.
var version = "dev"

type command struct {
	name, args, help string
	run              func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"train", "--config FILE [--set k=v]", "run the stages of a training config (the default command)", runTrain},
		{"demo", "[--out DIR]", "run the CPU demo: prep, MSM, AFT, evaluation on bundled data", runDemo},
		{"toyworld", "[--out DIR] [--seed N]", "write the toy world of the value-generalization experiment: data, tokenizer, configs", runToyWorld},
		{"prep", "--config FILE", "tokenize JSONL sources into token shards", runPrep},
		{"tokenize", "--tokenizer FILE", "encode JSONL {\"text\"} from stdin to {\"ids\"} on stdout", runTokenize},
		{"score", "--model DIR [--adapter DIR] --input FILE", "log-probabilities of token sequences", runScore},
		{"generate", "--model DIR --input FILE --output FILE", "sample completions of JSONL prompts (resumable)", runGenerate},
		{"eval", "--model DIR (--data|--mc|--probes FILE)", "held-out loss per source, multiple-choice accuracy, or value probes", runEval},
		{"report", "RUN_DIR... [--out DIR]", "compare runs: report.md and loss.png", runReport},
		{"experiment", "--config FILE [--out DIR] [--slurm FILE]", "train arms x seeds, score probes, compare arms with statistics", runExperiment},
		{"plan", "--config FILE [--gpus N --gpu-memory GiB]", "per-GPU memory of a config, sharded and not; exit 1 if it does not fit", runPlan},
		{"version", "", "print versions and the devices libtorch sees", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "msmtrain %s: Model Spec Midtraining\n\nUsage:\n  msmtrain --config FILE [--set section.key=value ...]\n  msmtrain COMMAND [flags]\n\nCommands:\n", version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %-42s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintf(w, "\nRun 'msmtrain COMMAND --help' for a command's flags. See README.md for configs and Slurm scripts.\n")
}

// errUsage marks errors that should be followed by the usage text.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return nil
	case "--version", "-version":
		return runVersion(nil, stdout, stderr)
	}
	if strings.HasPrefix(args[0], "-") {
		return runTrain(args, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	return fmt.Errorf("unknown command %q (run msmtrain --help)", args[0])
}

func main() {
	// Every command drives libtorch from this one OS thread: calls from varying threads are not bit-reproducible
	// (see train.Run). libtorch's CPU threads: all cores but one, unless OMP_NUM_THREADS says otherwise
	// (training sets its own share per process, see train.go).
	runtime.LockOSThread()
	if os.Getenv("OMP_NUM_THREADS") == "" {
		torch.SetNumThreads(max(1, runtime.NumCPU()-1))
	}
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case errors.As(err, new(*exitCode)):
		var e *exitCode
		errors.As(err, &e)
		fmt.Fprintln(os.Stderr, "msmtrain:", e.err)
		os.Exit(e.code)
	default:
		fmt.Fprintln(os.Stderr, "msmtrain:", err)
		os.Exit(1)
	}
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("msmtrain "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
