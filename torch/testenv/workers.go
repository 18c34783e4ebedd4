package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// WorkerEnv is set in the processes StartWorkers starts.
const WorkerEnv = "MSM_DIST_WORKER"

// StartWorkers runs this test binary's test named worker as world processes that can join a process group over
// loopback (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT and WorkerEnv set, env added), and fails unless each exits
// 0 and prints "WORKER OK" within two minutes. It returns what each printed. The port is one the system just gave
// out; if another process took it before rank 0 listened, the workers run again on another.
func StartWorkers(t *testing.T, worker string, world int, env ...string) []string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		printed, failures := startWorkers(t, worker, world, env)
		if len(failures) == 0 {
			return printed
		}
		if attempt < 3 && strings.Contains(strings.ToLower(strings.Join(printed, "")), "address already in use") {
			t.Logf("the port was taken; running the workers again")
			continue
		}
		for _, f := range failures {
			t.Error(f)
		}
		return printed
	}
}

// startWorkers runs the workers once and returns what each printed and a message per failed one.
func startWorkers(t *testing.T, worker string, world int, env []string) ([]string, []string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var cmds []*exec.Cmd
	outs := make([]*strings.Builder, world)
	for r := 0; r < world; r++ {
		cmd := exec.Command(os.Args[0], "-test.run=^"+worker+"$", "-test.v")
		cmd.Env = append(append(os.Environ(), WorkerEnv+"=1", fmt.Sprintf("RANK=%d", r), fmt.Sprintf("WORLD_SIZE=%d", world),
			"MASTER_ADDR=127.0.0.1", fmt.Sprintf("MASTER_PORT=%d", port)), env...)
		outs[r] = &strings.Builder{}
		cmd.Stdout, cmd.Stderr = outs[r], outs[r]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	var failures []string
	for r, cmd := range cmds {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil || !strings.Contains(outs[r].String(), "WORKER OK") {
				failures = append(failures, fmt.Sprintf("rank %d: %v\n%s", r, err, outs[r]))
			}
		case <-time.After(2 * time.Minute):
			for _, c := range cmds {
				c.Process.Kill()
			}
			t.Fatalf("rank %d timed out\n%s", r, outs[r])
		}
	}
	printed := make([]string, world)
	for r, o := range outs {
		printed[r] = o.String()
	}
	return printed, failures
}

// IsWorker reports whether this process is one that StartWorkers started.
func IsWorker() bool { return os.Getenv(WorkerEnv) != "" }
