package train

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/dist"
)

// TestRunLock: a second training of a run directory in use is refused, naming the directory and the holder, before
// it writes anything; the lock goes with its holder.
func TestRunLock(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	out := filepath.Join(dir, "run")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	held, err := LockRun(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = runConfig(t, testConfig(dir, out, "steps = 2"), 0)
	host, _ := os.Hostname()
	want := fmt.Sprintf("run directory %s is in use by pid %d on host %s since ", out, os.Getpid(), host)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second run: %v, want %q", err, want)
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if e.Name() != lockName {
			t.Errorf("the refused run wrote %s", e.Name())
		}
	}
	held.Close()
	if err := runConfig(t, testConfig(dir, out, "steps = 2"), 0); err != nil {
		t.Fatalf("after the holder let go: %v", err)
	}
	if ms := readMetrics(t, filepath.Join(out, "metrics.jsonl")); len(ms) == 0 {
		t.Fatal("no metrics")
	}
}

// TestRunLockSIGKILL: a holder killed with SIGKILL leaves no lock behind.
func TestRunLockSIGKILL(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolder$")
	cmd.Env = append(os.Environ(), "MSM_LOCK_HOLDER="+out)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "LOCKED") {
		t.Fatalf("holder: %q %v", line, err)
	}
	_, err = LockRun(out, nil)
	if want := fmt.Sprintf("in use by pid %d ", cmd.Process.Pid); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("while held: %v, want %q", err, want)
	}
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	l, err := LockRun(out, nil)
	if err != nil {
		t.Fatalf("after SIGKILL of the holder: %v", err)
	}
	l.Close()
}

// TestLockHolder takes a run lock and holds it until killed (a child process of TestRunLockSIGKILL).
func TestLockHolder(t *testing.T) {
	dir := os.Getenv("MSM_LOCK_HOLDER")
	if dir == "" {
		t.Skip("runs only as a child process of TestRunLockSIGKILL, which sets MSM_LOCK_HOLDER")
	}
	if _, err := LockRun(dir, nil); err != nil {
		t.Fatal(err)
	}
	fmt.Println("LOCKED")
	time.Sleep(time.Minute)
}

// TestNoWriteThroughSymlinks: a run file that is a symbolic link (here to a file outside the run) is refused with
// its path; the link's target is left as it was.
func TestNoWriteThroughSymlinks(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	for _, name := range []string{"metrics.jsonl", "config.toml", "summary.json", "msm/summary.json", "msm/DONE"} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			cfg, err := Parse([]byte(testConfig(dir, out, "steps = 2")), "test.toml", nil)
			if err != nil {
				t.Fatal(err)
			}
			content := []byte("not yours\n")
			if name == "config.toml" { // read before it is written: the same config, so that the run goes on to write it
				if content, err = cfg.Resolved(); err != nil {
					t.Fatal(err)
				}
			}
			outside := filepath.Join(t.TempDir(), "outside")
			if err := os.WriteFile(outside, content, 0o644); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(out, name)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, link); err != nil {
				t.Fatal(err)
			}
			err = Run(context.Background(), cfg, Env{Out: io.Discard, Err: io.Discard, Dist: dist.Env{World: 1},
				Device: torch.CPU, Build: bigramBuilder})
			var se *rundir.SymlinkError
			if !errors.As(err, &se) || se.Path != link || !strings.Contains(err.Error(), link+" is a symbolic link") {
				t.Fatalf("error %v, want a SymlinkError for %s", err, link)
			}
			if b, _ := os.ReadFile(outside); !bytes.Equal(b, content) {
				t.Errorf("the link's target was written: %q", b)
			}
			if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("the link was replaced: %v", err)
			}
		})
	}
	// A directory link (checkpoints on another disk) is honoured.
	out := filepath.Join(t.TempDir(), "run")
	elsewhere := t.TempDir()
	os.MkdirAll(out, 0o755)
	if err := os.Symlink(elsewhere, filepath.Join(out, "checkpoints")); err != nil {
		t.Fatal(err)
	}
	if err := runConfig(t, testConfig(dir, out, "steps = 2"), 0); err != nil {
		t.Fatal(err)
	}
	if cks, _ := rundir.ListCheckpoints(elsewhere, "aft"); len(cks) == 0 {
		t.Error("no checkpoint in the linked checkpoints directory")
	}
}

// TestRunFileWritersRefuseLinks: each writer of run files refuses a link by itself (not only the check at the
// start of Run), so that a link made while a run goes on is not written through either.
func TestRunFileWritersRefuseLinks(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("{\"stage\":\"msm\",\"step\":9}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "f")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func() error{
		"writeFileAtomic": func() error { return rundir.WriteFile(link, []byte("x")) },
		"openMetrics (append)": func() error {
			m, err := rundir.OpenMetrics(link, "aft", 0)
			m.Close()
			return err
		},
		"openMetrics (rewrite)": func() error {
			m, err := rundir.OpenMetrics(link, "msm", 1)
			m.Close()
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			var se *rundir.SymlinkError
			if err := write(); !errors.As(err, &se) || se.Path != link {
				t.Errorf("error %v, want a SymlinkError for %s", err, link)
			}
			if b, _ := os.ReadFile(outside); string(b) != "{\"stage\":\"msm\",\"step\":9}\n" {
				t.Errorf("written through the link: %q", b)
			}
		})
	}
}
