// Package experiment runs and reports `msmtrain experiment`: a base training config, named arms that override it
// (--set values, stages left out) and a list of seeds. Every arm × seed is a training run of its own
// (OUT/<arm>/seed-<seed>), trained by a child msmtrain process, one after the other, resumed when interrupted and
// skipped when finished; its stages' outputs are scored on value probes (infer.ScoreProbes) and the results cached
// in the run directory. The report (OUT/report/) gives per arm, stage and metric the mean, the sample standard
// deviation and every seed's value, compares every pair of arms with a t-test (paired by seed when both arms ran
// the same seeds, else Welch's), and plots the probe share after each stage.
//
// The files, by role: the experiment config and its expansion into runs (config.go), the runs (run.go), what is
// read back from their directories (collect.go), the statistics (stats.go), the report (report.go, plot.go) and
// the Slurm array script (slurm.go).
package experiment
