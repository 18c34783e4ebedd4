package optim

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/torch/testenv"
)

// pySchedules replays each config through torch.optim.lr_scheduler.LambdaLR
// with the transformers lambdas written out (get_cosine_with_min_lr,
// get_linear_schedule_with_warmup extended with a floor, constant with
// warmup, get_wsd_schedule) and records param_groups[0]["lr"] before each
// update.
const pySchedules = `
import json, math, sys, torch

def warmup_steps(c, T):
    return c.get("warmup_steps", 0) or math.ceil(c.get("warmup_ratio", 0.0) * T)

def make_lambda(c, T):
    W = warmup_steps(c, T)
    m = c.get("min_lr_ratio", 0.0)
    kind = c["kind"]
    def lam(s):
        if s < W:
            return float(s) / float(max(1, W))
        if kind == "constant":
            return 1.0
        if kind == "cosine":
            p = min(float(s - W) / float(max(1, T - W)), 1.0)
            f = 0.5 * (1.0 + math.cos(math.pi * float(0.5) * 2.0 * p))
            return max(0.0, f * (1 - m) + m)
        if kind == "linear":
            f = max(0.0, float(T - s) / float(max(1, T - W)))
            return max(0.0, f * (1 - m) + m)
        D = math.ceil(c["decay_ratio"] * T)
        S = T - W - D
        if s < W + S:
            return 1.0
        if s < W + S + D:
            p = float(s - W - S) / float(max(1, D))
            shape = c.get("decay_shape") or "cosine"
            if shape == "linear":
                f = 1.0 - p
            elif shape == "cosine":
                f = 0.5 * (1.0 + math.cos(math.pi * float(0.5) * 2.0 * p))
            else:
                f = 1.0 - math.sqrt(p)
            return max(0.0, f * (1.0 - m) + m)
        return m
    return lam

cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    T, peak = c["total"], c["peak"]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, make_lambda(c["cfg"], T))
    lrs = []
    for _ in range(T + 4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    out.append(lrs)
json.dump(out, open(sys.argv[2], "w"))
`

type schedCase struct {
	Name  string         `json:"name"`
	Cfg   map[string]any `json:"cfg"` // the TOML keys
	Total int            `json:"total"`
	Peak  float64        `json:"peak"`
}

// config decodes the TOML-keyed map the way cmd/ would, through the tags.
func (c schedCase) config(t *testing.T) ScheduleConfig {
	t.Helper()
	var cfg ScheduleConfig
	for k, v := range c.Cfg {
		switch k {
		case "kind":
			cfg.Kind = v.(string)
		case "warmup_steps":
			cfg.Warmup = int(v.(float64))
		case "warmup_ratio":
			cfg.WarmupRatio = v.(float64)
		case "min_lr_ratio":
			cfg.MinLRRatio = v.(float64)
		case "decay_ratio":
			cfg.DecayRatio = v.(float64)
		case "decay_shape":
			cfg.DecayShape = v.(string)
		default:
			t.Fatalf("unknown key %s", k)
		}
	}
	return cfg
}

func TestScheduleMatchesTorchLambdaLR(t *testing.T) {
	py := testenv.Python(t)
	cases := []schedCase{
		{"cosine warmup", map[string]any{"kind": "cosine", "warmup_steps": 10.0}, 100, 3e-4},
		{"cosine ratio floor", map[string]any{"kind": "cosine", "warmup_ratio": 0.03, "min_lr_ratio": 0.1}, 1000, 1e-5},
		{"cosine warmup is all", map[string]any{"kind": "cosine", "warmup_steps": 8.0}, 8, 1e-3},
		{"cosine one step", map[string]any{"kind": "cosine"}, 1, 2e-5},
		{"linear", map[string]any{"kind": "linear"}, 50, 1e-4},
		{"linear warmup floor", map[string]any{"kind": "linear", "warmup_steps": 5.0, "min_lr_ratio": 0.05}, 37, 5e-5},
		{"constant", map[string]any{"kind": "constant"}, 20, 1e-4},
		{"constant warmup ratio", map[string]any{"kind": "constant", "warmup_ratio": 0.1}, 31, 1e-4},
		{"wsd default shape", map[string]any{"kind": "wsd", "warmup_steps": 10.0, "decay_ratio": 0.2}, 100, 3e-4},
		{"wsd linear floor", map[string]any{"kind": "wsd", "warmup_ratio": 0.05, "decay_ratio": 0.1,
			"decay_shape": "linear", "min_lr_ratio": 0.01}, 333, 2e-4},
		{"wsd 1-sqrt all decay", map[string]any{"kind": "wsd", "decay_ratio": 1.0, "decay_shape": "1-sqrt"}, 17, 1e-4},
		{"wsd cosine floor", map[string]any{"kind": "wsd", "warmup_steps": 3.0, "decay_ratio": 0.25,
			"decay_shape": "cosine", "min_lr_ratio": 0.2}, 41, 6e-4},
	}
	dir := t.TempDir()
	in, _ := json.Marshal(cases)
	for _, f := range []struct{ name, body string }{{"cases.json", string(in)}, {"s.py", pySchedules}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(py, "s.py", "cases.json", "out.json")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "out.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want [][]float64
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			s, err := NewSchedule(c.config(t), c.Peak, c.Total)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for step, w := range want[i] {
				got := s.LR(step)
				rel := math.Abs(got-w) / math.Max(math.Abs(w), math.SmallestNonzeroFloat64)
				if got == w {
					rel = 0
				}
				worst = math.Max(worst, rel)
				if rel > 1e-12 {
					t.Errorf("LR(%d) = %.17g, torch LambdaLR %.17g (relative %.2g)", step, got, w, rel)
				}
			}
			t.Logf("%d steps, largest relative difference %.3g", len(want[i]), worst)
		})
	}
}

func TestScheduleConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   ScheduleConfig
		total int
		peak  float64
		key   string
	}{
		{"no kind", ScheduleConfig{}, 10, 1, "kind"},
		{"bad kind", ScheduleConfig{Kind: "exp"}, 10, 1, "kind"},
		{"negative warmup", ScheduleConfig{Kind: "cosine", Warmup: -1}, 10, 1, "warmup_steps"},
		{"warmup ratio 1", ScheduleConfig{Kind: "cosine", WarmupRatio: 1}, 10, 1, "warmup_ratio"},
		{"warmup ratio NaN", ScheduleConfig{Kind: "cosine", WarmupRatio: math.NaN()}, 10, 1, "warmup_ratio"},
		{"both warmups", ScheduleConfig{Kind: "cosine", Warmup: 2, WarmupRatio: 0.1}, 10, 1, "warmup_ratio"},
		{"min ratio above 1", ScheduleConfig{Kind: "linear", MinLRRatio: 1.5}, 10, 1, "min_lr_ratio"},
		{"min ratio on constant", ScheduleConfig{Kind: "constant", MinLRRatio: 0.1}, 10, 1, "min_lr_ratio"},
		{"decay ratio on cosine", ScheduleConfig{Kind: "cosine", DecayRatio: 0.1}, 10, 1, "decay_ratio"},
		{"decay shape on linear", ScheduleConfig{Kind: "linear", DecayShape: "linear"}, 10, 1, "decay_shape"},
		{"wsd without decay", ScheduleConfig{Kind: "wsd"}, 10, 1, "decay_ratio"},
		{"wsd bad shape", ScheduleConfig{Kind: "wsd", DecayRatio: 0.1, DecayShape: "exp"}, 10, 1, "decay_shape"},
		{"warmup beyond total", ScheduleConfig{Kind: "cosine", Warmup: 11}, 10, 1, "warmup_steps"},
		{"wsd phases beyond total", ScheduleConfig{Kind: "wsd", Warmup: 5, DecayRatio: 0.6}, 10, 1, "decay_ratio"},
		{"zero total", ScheduleConfig{Kind: "cosine"}, 0, 1, "total steps"},
		{"zero peak", ScheduleConfig{Kind: "cosine"}, 10, 0, "peak learning rate"},
		{"infinite peak", ScheduleConfig{Kind: "cosine"}, 10, math.Inf(1), "peak learning rate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSchedule(tc.cfg, tc.peak, tc.total)
			if err == nil || !strings.HasPrefix(err.Error(), "optim: schedule") || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %v, want one naming %q", err, tc.key)
			}
		})
	}
	if err := DefaultScheduleConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

func TestScheduleNegativeStep(t *testing.T) {
	s, err := NewSchedule(ScheduleConfig{Kind: "linear", Warmup: 0}, 1e-3, 10)
	if err != nil {
		t.Fatal(err)
	}
	if s.LR(-5) != s.LR(0) {
		t.Errorf("LR(-5) = %v, LR(0) = %v", s.LR(-5), s.LR(0))
	}
}
