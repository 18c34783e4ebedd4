package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/msmtrain/msmtrain/data/atomicfile"
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
	if err := atomicfile.WriteFile(filepath.Join(outDir, ReportFile), buf.Bytes()); err != nil {
		return err
	}
	return PlotPNG(runs, filepath.Join(outDir, PlotFile), PlotOptions{})
}
