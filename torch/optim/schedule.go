package optim

import (
	"fmt"
	"math"
)

// Schedule gives the learning rate of each optimizer update.
type Schedule interface {
	// LR returns the learning rate for the update that follows step
	// completed optimizer steps (0-based). Negative steps count as 0.
	LR(step int) float64
}

// ScheduleConfig selects a learning-rate schedule. Kinds, with peak the
// optimizer's learning rate, min = min_lr_ratio*peak, W the warmup steps and
// T the total steps:
//
//   - every kind warms up linearly first, as transformers does:
//     LR(s) = peak*s/W for s < W. W is warmup_steps, or
//     ceil(warmup_ratio*T) when warmup_ratio is set instead.
//   - "cosine": LR(s) = min + (peak-min)*0.5*(1+cos(pi*p)), with
//     p = (s-W)/(T-W) clamped to [0, 1] (transformers'
//     cosine_with_min_lr with one half-cycle).
//   - "linear": LR(s) = min + (peak-min)*(1-p).
//   - "constant": LR(s) = peak after warmup.
//   - "wsd" (warmup-stable-decay): peak until the last D = ceil(decay_ratio*T)
//     steps, then decay over D steps by decay_shape ("cosine", the default,
//     "linear" or "1-sqrt") from peak to min, and min from step T on
//     (transformers' get_wsd_schedule).
//
// After T steps every kind holds its final value. The TOML keys are those of msmtrain's [train] table, where
// the kind is "schedule".
type ScheduleConfig struct {
	Kind        string  `toml:"schedule"`
	WarmupRatio float64 `toml:"warmup_ratio"`
	Warmup      int     `toml:"warmup_steps"`
	MinLRRatio  float64 `toml:"min_lr_ratio"`
	DecayRatio  float64 `toml:"decay_ratio"`
	DecayShape  string  `toml:"decay_shape,omitempty"`
}

// DefaultScheduleConfig is a cosine decay to 0 without warmup.
func DefaultScheduleConfig() ScheduleConfig { return ScheduleConfig{Kind: "cosine"} }

// Validate checks the config on its own; NewSchedule also checks it against
// the number of steps. Errors name the offending TOML key.
func (c ScheduleConfig) Validate() error {
	bad := func(key string, format string, args ...any) error {
		return fmt.Errorf("optim: schedule %s: %s", key, fmt.Sprintf(format, args...))
	}
	switch c.Kind {
	case "cosine", "linear", "constant", "wsd":
	case "":
		return bad("kind", "not set; use cosine, linear, constant or wsd")
	default:
		return bad("kind", "unknown %q; use cosine, linear, constant or wsd", c.Kind)
	}
	switch {
	case c.Warmup < 0:
		return bad("warmup_steps", "%d is negative", c.Warmup)
	case !(c.WarmupRatio >= 0 && c.WarmupRatio < 1):
		return bad("warmup_ratio", "%v is outside [0, 1)", c.WarmupRatio)
	case c.Warmup > 0 && c.WarmupRatio > 0:
		return bad("warmup_ratio", "set together with warmup_steps; set one of them")
	case !(c.MinLRRatio >= 0 && c.MinLRRatio <= 1):
		return bad("min_lr_ratio", "%v is outside [0, 1]", c.MinLRRatio)
	case c.Kind == "constant" && c.MinLRRatio != 0:
		return bad("min_lr_ratio", "has no effect on a constant schedule")
	case c.Kind != "wsd" && c.DecayRatio != 0:
		return bad("decay_ratio", "only applies to kind wsd, not %s", c.Kind)
	case c.Kind != "wsd" && c.DecayShape != "":
		return bad("decay_shape", "only applies to kind wsd, not %s", c.Kind)
	case c.Kind == "wsd" && !(c.DecayRatio > 0 && c.DecayRatio <= 1):
		return bad("decay_ratio", "%v is outside (0, 1]", c.DecayRatio)
	}
	switch c.DecayShape {
	case "", "cosine", "linear", "1-sqrt":
	default:
		return bad("decay_shape", "unknown %q; use cosine, linear or 1-sqrt", c.DecayShape)
	}
	return nil
}

// NewSchedule validates cfg and returns its schedule for a run of
// totalSteps optimizer steps peaking at peakLR.
func NewSchedule(cfg ScheduleConfig, peakLR float64, totalSteps int) (Schedule, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !(peakLR > 0) || math.IsInf(peakLR, 0) {
		return nil, fmt.Errorf("optim: schedule: peak learning rate %v must be positive and finite", peakLR)
	}
	if totalSteps <= 0 {
		return nil, fmt.Errorf("optim: schedule: total steps %d must be positive", totalSteps)
	}
	s := &schedule{kind: cfg.Kind, shape: cfg.DecayShape, peak: peakLR, minRatio: cfg.MinLRRatio,
		warmup: cfg.Warmup, total: totalSteps}
	if cfg.WarmupRatio > 0 {
		s.warmup = int(math.Ceil(cfg.WarmupRatio * float64(totalSteps)))
	}
	if s.warmup > totalSteps {
		return nil, fmt.Errorf("optim: schedule warmup_steps: %d exceeds the %d total steps", s.warmup, totalSteps)
	}
	if cfg.Kind == "wsd" {
		s.decay = int(math.Ceil(cfg.DecayRatio * float64(totalSteps)))
		if s.warmup+s.decay > totalSteps {
			return nil, fmt.Errorf("optim: schedule decay_ratio: %d warmup + %d decay steps exceed the %d total steps",
				s.warmup, s.decay, totalSteps)
		}
		if s.shape == "" {
			s.shape = "cosine"
		}
	}
	return s, nil
}

type schedule struct {
	kind, shape          string
	peak, minRatio       float64
	warmup, decay, total int
}

// LR returns peak times the multiplier, computed as transformers' lambdas do.
func (s *schedule) LR(step int) float64 { return s.peak * s.factor(max(step, 0)) }

func (s *schedule) factor(step int) float64 {
	if step < s.warmup {
		return float64(step) / float64(max(1, s.warmup))
	}
	switch s.kind {
	case "constant":
		return 1
	case "cosine", "linear":
		p := min(float64(step-s.warmup)/float64(max(1, s.total-s.warmup)), 1)
		return s.decayed(s.kind, p)
	}
	// wsd
	stable := s.total - s.warmup - s.decay
	if step < s.warmup+stable {
		return 1
	}
	if step >= s.total {
		return s.minRatio
	}
	return s.decayed(s.shape, float64(step-s.warmup-stable)/float64(max(1, s.decay)))
}

// decayed maps progress p in [0, 1] to a multiplier from 1 down to minRatio.
func (s *schedule) decayed(shape string, p float64) float64 {
	var f float64
	switch shape {
	case "cosine":
		f = 0.5 * (1 + math.Cos(math.Pi*p))
	case "linear":
		f = 1 - p
	case "1-sqrt":
		f = 1 - math.Sqrt(p)
	}
	return max(0, f*(1-s.minRatio)+s.minRatio)
}
