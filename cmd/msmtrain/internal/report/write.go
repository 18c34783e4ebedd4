package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Output files of Write.
const (
	ReportFile = "report.md"
	PlotFile   = "loss.png"
)

// Write writes outDir/report.md, which shows the plot, and outDir/loss.png
// (default plot options), creating outDir; each file is replaced atomically.
func Write(runs []*Run, outDir string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var buf bytes.Buffer
	if err := markdown(runs, &buf, PlotFile); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(outDir, ReportFile), buf.Bytes()); err != nil {
		return err
	}
	return PlotPNG(runs, filepath.Join(outDir, PlotFile), PlotOptions{})
}

// writeFileAtomic writes b to a temporary file beside path, syncs it and
// renames it over path, so readers see the old file or the new one.
func writeFileAtomic(path string, b []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(b); err != nil {
		return fmt.Errorf("report: writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("report: writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("report: writing %s: %w", path, err)
	}
	if err = os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
