package experiment

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
)

// Config is an experiment file:
//
//	name = "toy-values"
//	base = "base.toml"        # a training config
//	out_dir = "runs/toy-exp"  # run directories OUT/<arm>/seed-<seed>, the report in OUT/report
//	seeds = [1, 2, 3]
//	[probes]
//	file = "probes.jsonl"     # value probes scored on every stage's output of every run
//	[[arms]]
//	name = "spec-a"
//	set = ['stages.msm.data.sources=[{name="spec-a", path="spec_a.jsonl", kind="documents"}]']
//	skip_stages = []          # stages of the base left out
//	[effect]                  # the comparison printed last
//	metric = "probe.frugality.share"
//	stage = "aft"             # default: the base's last stage
//	a = "spec-a"
//	b = "spec-b"
//
// Relative paths in the experiment file (base, out_dir, probes.file) are relative to the file's directory. The
// base is an ordinary training config: its own paths, and those in the arms' set values, are relative to the
// working directory, as for `msmtrain --config`.
type Config struct {
	Name   string  `toml:"name"`
	Base   string  `toml:"base"`
	OutDir string  `toml:"out_dir"`
	Seeds  []int64 `toml:"seeds"`
	Probes struct {
		File string `toml:"file"`
	} `toml:"probes"`
	Arms   []Arm   `toml:"arms"`
	Effect *Effect `toml:"effect"`

	Path   string   `toml:"-"` // the experiment file
	Stages []string `toml:"-"` // the base's stages, in order

	base   []byte   // the base config's text
	labels []string // the probes' value labels, sorted
}

// Arm is one variant of the base config.
type Arm struct {
	Name       string   `toml:"name"`
	Set        []string `toml:"set"`         // --set overrides ("section.key=value", "stages.NAME.key=value")
	SkipStages []string `toml:"skip_stages"` // stages of the base this arm leaves out
}

// Effect is the comparison the experiment is about: metric at stage, arm A against arm B.
type Effect struct {
	Metric string `toml:"metric"`
	Stage  string `toml:"stage"`
	A      string `toml:"a"`
	B      string `toml:"b"`
}

// Run is one arm × seed: a training run of its own.
type Run struct {
	Index      int // position in the order runs are trained (seed by seed, each seed's arms in file order)
	Arm        string
	Seed       int64
	Dir        string   // the run directory: OUT/<arm>/seed-<seed>
	ConfigFile string   // the resolved training config the run is started with: OUT/<arm>/seed-<seed>.toml
	Stages     []string // the arm's stages
	Config     *train.Config
	Resolved   []byte // Config.Resolved(), the text of ConfigFile
}

// Name is "<arm>/seed-<seed>".
func (r *Run) Name() string { return r.Arm + "/" + seedDir(r.Seed) }

func seedDir(seed int64) string { return "seed-" + strconv.FormatInt(seed, 10) }

// ReportDir is OUT/report, where the report is written.
func (c *Config) ReportDir() string { return filepath.Join(c.OutDir, "report") }

// armName is a plain name, as stage names are: it becomes a directory.
var armName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Load reads an experiment file strictly (an unknown key is an error naming it), resolves its paths, reads the
// base config and checks the file. outDir, when not empty, replaces out_dir (relative to the working directory).
func Load(path, outDir string) (*Config, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	c := &Config{Path: path}
	md, err := toml.Decode(string(text), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("experiment: %s:%d: %s", path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("experiment: %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var keys []string
		for _, k := range und {
			keys = append(keys, k.String())
		}
		return nil, fmt.Errorf("experiment: %s: unknown key %s (want name, base, out_dir, seeds, probes.file, arms (name, set, "+
			"skip_stages), effect (metric, stage, a, b))", path, strings.Join(keys, ", "))
	}
	dir := filepath.Dir(path)
	rel := func(p string) (string, error) {
		if p == "" || filepath.IsAbs(p) {
			return p, nil
		}
		return filepath.Abs(filepath.Join(dir, p))
	}
	if c.Base, err = rel(c.Base); err != nil {
		return nil, err
	}
	if c.Probes.File, err = rel(c.Probes.File); err != nil {
		return nil, err
	}
	if outDir != "" {
		c.OutDir = outDir
	} else if c.OutDir, err = rel(c.OutDir); err != nil {
		return nil, err
	}
	if c.OutDir != "" {
		if c.OutDir, err = filepath.Abs(c.OutDir); err != nil {
			return nil, err
		}
	}
	if c.Name == "" {
		c.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("experiment: %s: %w", path, err)
	}
	return c, nil
}

// SetSeeds replaces the file's seeds (msmtrain experiment --seeds): the same arms, other runs.
func (c *Config) SetSeeds(seeds []int64) error {
	if err := checkSeeds(seeds); err != nil {
		return err
	}
	c.Seeds = slices.Clone(seeds)
	return nil
}

func checkSeeds(seeds []int64) error {
	if len(seeds) == 0 {
		return errors.New("seeds: at least one seed is required")
	}
	seen := map[int64]bool{}
	for _, s := range seeds {
		if s < 0 {
			return fmt.Errorf("seeds: %d: want seeds >= 0", s)
		}
		if seen[s] {
			return fmt.Errorf("seeds: %d appears twice", s)
		}
		seen[s] = true
	}
	return nil
}

// check validates the experiment file and reads the base config's stages.
func (c *Config) check() error {
	switch {
	case c.Base == "":
		return errors.New("base: the training config the arms modify is required")
	case c.OutDir == "":
		return errors.New("out_dir is required (or --out)")
	case len(c.Arms) == 0:
		return errors.New("arms: at least one [[arms]] is required")
	}
	if err := checkSeeds(c.Seeds); err != nil {
		return err
	}
	if c.Probes.File != "" { // its format now, not after the first run
		items, err := readProbes(c.Probes.File)
		if err != nil {
			return fmt.Errorf("probes.file: %w", err)
		}
		for _, it := range items {
			for _, v := range it.Values {
				if !slices.Contains(c.labels, v) {
					c.labels = append(c.labels, v)
				}
			}
		}
		slices.Sort(c.labels)
	}
	var err error
	if c.base, err = os.ReadFile(c.Base); err != nil {
		return fmt.Errorf("base: %w", err)
	}
	// The base alone first, so that its errors name its own lines.
	if _, err := train.Decode(c.base, c.Base, nil); err != nil {
		return fmt.Errorf("base: %w", err)
	}
	doc, err := c.baseDoc()
	if err != nil {
		return err
	}
	for _, st := range stageTables(doc) {
		n, _ := st["name"].(string)
		c.Stages = append(c.Stages, n)
	}
	if len(c.Stages) == 0 {
		return fmt.Errorf("base %s: no [[stages]]", c.Base)
	}
	names := map[string]bool{}
	for i, a := range c.Arms {
		switch {
		case !armName.MatchString(a.Name):
			return fmt.Errorf("arms[%d].name = %q: want a plain name (letters, digits, _ and -, not first), as it names a directory", i, a.Name)
		case a.Name == "report":
			return fmt.Errorf("arms[%d].name = \"report\": the name of the report's directory", i)
		case names[a.Name]:
			return fmt.Errorf("arms[%d].name: two arms are named %q", i, a.Name)
		}
		names[a.Name] = true
		for _, s := range a.SkipStages {
			if !slices.Contains(c.Stages, s) {
				return fmt.Errorf("arm %q: skip_stages: no stage %q in %s (stages: %s)", a.Name, s, c.Base, quoteAll(c.Stages))
			}
		}
		if len(c.armStages(a)) == 0 {
			return fmt.Errorf("arm %q: skip_stages leaves no stage", a.Name)
		}
		for _, s := range a.Set {
			k, _, _ := strings.Cut(s, "=")
			if k = strings.TrimSpace(k); k == "seed" || k == "out_dir" {
				return fmt.Errorf("arm %q: set %s: the experiment sets seed and out_dir of each run itself", a.Name, s)
			}
		}
	}
	if e := c.Effect; e != nil {
		if e.Stage == "" {
			e.Stage = c.Stages[len(c.Stages)-1]
		}
		for _, x := range []struct{ key, arm string }{{"a", e.A}, {"b", e.B}} {
			i := slices.IndexFunc(c.Arms, func(a Arm) bool { return a.Name == x.arm })
			if i < 0 {
				return fmt.Errorf("effect.%s = %q: no arm of that name (arms: %s)", x.key, x.arm, quoteAll(c.armNames()))
			}
			if !slices.Contains(c.armStages(c.Arms[i]), e.Stage) {
				return fmt.Errorf("effect.stage = %q: arm %q has no such stage (its stages: %s)", e.Stage, x.arm, quoteAll(c.armStages(c.Arms[i])))
			}
		}
		if e.A == e.B {
			return fmt.Errorf("effect: a and b are both %q", e.A)
		}
		if err := c.checkMetric(e.Metric); err != nil {
			return fmt.Errorf("effect.metric: %w", err)
		}
	}
	return nil
}

// Metrics collected from every stage of every run, besides the probes' "probe.<value>.<metric>".
const (
	MetricEvalLoss = "eval_loss"   // the stage's final held-out loss (summary.json)
	MetricMC       = "mc_accuracy" // the stage's eval_mc accuracy (eval/<stage>-mc.json), and:
	MetricMCNorm   = "mc_accuracy_norm"
	MetricMCMargin = "mc_margin"
)

// probeMetrics are the per-value metrics of the probes, in report order.
var probeMetrics = []string{"share", "share_norm", "margin"}

// probeMetric splits "probe.<value>.<metric>".
func probeMetric(name string) (value, metric string, ok bool) {
	rest, ok := strings.CutPrefix(name, "probe.")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, ".")
	if i <= 0 || !slices.Contains(probeMetrics, rest[i+1:]) {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

func (c *Config) checkMetric(m string) error {
	switch m {
	case MetricEvalLoss, MetricMC, MetricMCNorm, MetricMCMargin:
		return nil
	case "":
		return errors.New("required")
	}
	if v, _, ok := probeMetric(m); ok {
		if c.Probes.File == "" {
			return fmt.Errorf("%q is a probe metric, and the experiment has no [probes] file", m)
		}
		if !slices.Contains(c.labels, v) {
			return fmt.Errorf("%q: no choice of %s is labelled %q (labels: %s)", m, c.Probes.File, v, quoteAll(c.labels))
		}
		return nil
	}
	return fmt.Errorf("%q: want probe.<value>.share, probe.<value>.share_norm, probe.<value>.margin, %s, %s, %s or %s", m,
		MetricEvalLoss, MetricMC, MetricMCNorm, MetricMCMargin)
}

func (c *Config) armNames() []string {
	var out []string
	for _, a := range c.Arms {
		out = append(out, a.Name)
	}
	return out
}

// armStages are the base's stages less the arm's skipped ones, in order.
func (c *Config) armStages(a Arm) []string {
	var out []string
	for _, s := range c.Stages {
		if !slices.Contains(a.SkipStages, s) {
			out = append(out, s)
		}
	}
	return out
}

func (c *Config) baseDoc() (map[string]any, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(c.base), &doc); err != nil {
		return nil, fmt.Errorf("base: %s: %w", c.Base, err)
	}
	return doc, nil
}

// stageTables are the [[stages]] tables of a decoded config document.
func stageTables(doc map[string]any) []map[string]any {
	switch x := doc["stages"].(type) {
	case []map[string]any: // [[stages]]
		return x
	case []any: // stages = [{...}, ...]
		var out []map[string]any
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// Expand makes the training config of every arm × seed: the base with the arm's skipped stages removed, then its
// --set values, then seed = <seed> and out_dir = <the run directory>, parsed and checked by train.Parse as
// `msmtrain --config base --set ...` would be (errors name the arm and the key). Runs are ordered seed by seed,
// so that an experiment stopped part way has comparable runs of every arm.
func (c *Config) Expand() ([]*Run, error) {
	var runs []*Run
	for _, seed := range c.Seeds {
		for _, a := range c.Arms {
			r, err := c.expand(a, seed)
			if err != nil {
				return nil, fmt.Errorf("experiment: %s: arm %q, seed %d: %w", c.Path, a.Name, seed, err)
			}
			r.Index = len(runs)
			runs = append(runs, r)
		}
	}
	return runs, nil
}

func (c *Config) expand(a Arm, seed int64) (*Run, error) {
	doc, err := c.baseDoc()
	if err != nil {
		return nil, err
	}
	var kept []map[string]any
	for _, st := range stageTables(doc) {
		if n, _ := st["name"].(string); !slices.Contains(a.SkipStages, n) {
			kept = append(kept, st)
		}
	}
	doc["stages"] = kept
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(doc); err != nil {
		return nil, err
	}
	dir := filepath.Join(c.OutDir, a.Name, seedDir(seed))
	sets := append(slices.Clone(a.Set), "seed="+strconv.FormatInt(seed, 10), "out_dir="+tomlString(dir))
	cfg, err := train.Parse(b.Bytes(), c.Base, sets)
	if err != nil {
		return nil, err
	}
	resolved, err := cfg.Resolved()
	if err != nil {
		return nil, err
	}
	return &Run{Arm: a.Name, Seed: seed, Dir: dir, ConfigFile: dir + ".toml", Stages: c.armStages(a), Config: cfg, Resolved: resolved}, nil
}

// readProbes reads a probe file (infer.ReadProbes) and refuses one without items.
func readProbes(path string) ([]infer.ProbeItem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	items, err := infer.ReadProbes(f, path)
	if err == nil && len(items) == 0 {
		err = fmt.Errorf("%s: no items", path)
	}
	return items, err
}

// tomlString is s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}
