package train

import "github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"

// checkRunLinks refuses, before any work, a run whose files are symbolic links: the writers refuse them too, but
// only when they come to write, which for summary.json is after the last stage.
func (c *Config) checkRunLinks() error {
	d := rundir.Dir(c.OutDir)
	paths := []string{d.Config(), d.Metrics(), d.Summary()}
	for _, st := range c.Stages {
		paths = append(paths, d.StageSummary(st.Name), d.Done(st.Name), d.DataRecord(st.Name))
	}
	for _, p := range paths {
		if err := rundir.NotSymlink(p); err != nil {
			return err
		}
	}
	return nil
}
