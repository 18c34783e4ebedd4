//go:build !unix

package prep

import "io"

// lockDir does not lock where flock is missing: two runs must not prepare
// the same out_dir at once there.
func lockDir(out string, progress io.Writer) (func(), error) { return func() {}, nil }
