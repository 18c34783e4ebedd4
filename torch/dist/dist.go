// Package dist joins the processes of a data-parallel job: it reads the launcher's variables (torchrun or Slurm),
// picks the rendezvous address, and opens a c10d process group (Gloo on CPU, NCCL on CUDA).
//
// torchrun-style: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
// Slurm (srun, one task per GPU): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the master is the first host of
// SLURM_JOB_NODELIST (or SLURM_NODELIST) unless MASTER_ADDR is set, and the port is MASTER_PORT or derived from
// SLURM_JOB_ID so that two jobs sharing a node do not collide.
package dist

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/msmtrain/msmtrain/torch"
)

// Env is one process's place in the job.
type Env struct {
	Rank, World, LocalRank int
	MasterAddr             string
	MasterPort             int
	Source                 string // "single", "torchrun" or "slurm"
}

// FromEnv reads the job layout from environment variables via getenv (os.Getenv in production). Without any
// launcher variables it returns a single-process Env.
func FromEnv(getenv func(string) string) (Env, error) {
	num := func(key string) (int, error) {
		v := getenv(key)
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("dist: %s=%q is not a non-negative integer", key, v)
		}
		return n, nil
	}
	port := func(def int) (int, error) {
		if getenv("MASTER_PORT") == "" {
			return def, nil
		}
		p, err := num("MASTER_PORT")
		if err == nil && (p == 0 || p > 65535) {
			err = fmt.Errorf("dist: MASTER_PORT=%d out of range", p)
		}
		return p, err
	}
	var e Env
	var err error
	switch {
	case getenv("WORLD_SIZE") != "":
		e.Source = "torchrun"
		if e.World, err = num("WORLD_SIZE"); err != nil {
			return e, err
		}
		if e.Rank, err = num("RANK"); err != nil {
			return e, err
		}
		if getenv("LOCAL_RANK") != "" {
			if e.LocalRank, err = num("LOCAL_RANK"); err != nil {
				return e, err
			}
		}
		e.MasterAddr = getenv("MASTER_ADDR")
		if e.MasterAddr == "" {
			e.MasterAddr = "127.0.0.1"
		}
		if e.MasterPort, err = port(29500); err != nil {
			return e, err
		}
	case getenv("SLURM_NTASKS") != "" && getenv("SLURM_PROCID") != "":
		e.Source = "slurm"
		if e.World, err = num("SLURM_NTASKS"); err != nil {
			return e, err
		}
		if e.Rank, err = num("SLURM_PROCID"); err != nil {
			return e, err
		}
		if getenv("SLURM_LOCALID") != "" {
			if e.LocalRank, err = num("SLURM_LOCALID"); err != nil {
				return e, err
			}
		}
		e.MasterAddr = getenv("MASTER_ADDR")
		if e.MasterAddr == "" {
			list := getenv("SLURM_JOB_NODELIST")
			if list == "" {
				list = getenv("SLURM_NODELIST")
			}
			if e.MasterAddr, err = FirstHost(list); err != nil {
				return e, err
			}
		}
		def := 29500
		if id, err := strconv.Atoi(getenv("SLURM_JOB_ID")); err == nil {
			def = 20000 + id%20000
		}
		if e.MasterPort, err = port(def); err != nil {
			return e, err
		}
	default:
		return Env{World: 1, Source: "single", MasterAddr: "127.0.0.1", MasterPort: 29500}, nil
	}
	if e.World < 1 || e.Rank >= e.World {
		return e, fmt.Errorf("dist: rank %d outside world size %d (%s variables)", e.Rank, e.World, e.Source)
	}
	return e, nil
}

// FirstHost returns the first host of a Slurm hostlist such as "gpu[003-005,9],login1" (-> "gpu003").
func FirstHost(list string) (string, error) {
	list = strings.TrimSpace(list)
	if list == "" {
		return "", fmt.Errorf("dist: empty Slurm node list (set MASTER_ADDR)")
	}
	// the first top-level item: up to a comma outside brackets
	depth, end := 0, len(list)
	for i, c := range list {
		if c == '[' {
			depth++
		} else if c == ']' {
			depth--
		} else if c == ',' && depth == 0 {
			end = i
			break
		}
	}
	item := list[:end]
	open := strings.IndexByte(item, '[')
	if open < 0 {
		return item, nil
	}
	close := strings.IndexByte(item, ']')
	if close < open {
		return "", fmt.Errorf("dist: bad Slurm node list %q", list)
	}
	first := item[open+1 : close]
	if i := strings.IndexAny(first, ",-"); i >= 0 {
		first = first[:i]
	}
	if first == "" {
		return "", fmt.Errorf("dist: bad Slurm node list %q", list)
	}
	return item[:open] + first + item[close+1:], nil
}

// Init opens the process group for env: backend "gloo" or "nccl" ("" picks nccl for CUDA devices, else gloo).
// A single-process Env returns nil and no error: callers treat a nil group as world size 1.
func Init(env Env, backend string, dev torch.Device, timeout time.Duration) (*torch.ProcessGroup, error) {
	if env.World <= 1 {
		return nil, nil
	}
	if backend == "" {
		backend = "gloo"
		if dev.IsCUDA() {
			backend = "nccl"
		}
	}
	pg, err := torch.NewProcessGroup(backend, env.MasterAddr, env.MasterPort, env.Rank, env.World, timeout)
	if err != nil {
		return nil, fmt.Errorf("dist: rank %d/%d joining %s at %s:%d (%s): %w", env.Rank, env.World, backend,
			env.MasterAddr, env.MasterPort, env.Source, err)
	}
	return pg, nil
}
