// Package configs holds msmtrain's configs: the published MSM recipes (*.toml, read from disk by
// `msmtrain --config`), and the CPU demo's config and data, embedded in the binary so that `msmtrain demo` runs
// from any directory without downloading anything.
package configs

import "embed"

// Demo is demo.toml and the demo's data (demo/*.jsonl, demo/spec.md).
//
//go:embed demo.toml demo/*.jsonl demo/spec.md
var Demo embed.FS
