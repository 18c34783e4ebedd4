package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/report"
)

func runReport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report", stderr)
	out := fs.String("out", "", "output directory (default: the first run's directory + \"/report\")")
	// Flags may come before, between or after the run directories.
	var dirs []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		dirs = append(dirs, args[0])
		args = args[1:]
	}
	if len(dirs) == 0 {
		return errors.New("report: give one or more run directories (msmtrain report RUN_DIR... [--out DIR])")
	}
	var runs []*report.Run
	for _, d := range dirs {
		r, err := report.Load(d)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		runs = append(runs, r)
	}
	if *out == "" {
		*out = filepath.Join(dirs[0], "report")
	}
	if err := report.Write(runs, *out); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	names := make([]string, len(runs))
	for i, r := range runs {
		names[i] = r.Name
	}
	fmt.Fprintf(stdout, "report: %s (%s) -> %s, %s\n", strings.Join(names, ", "), pluralRuns(len(runs)),
		filepath.Join(*out, report.ReportFile), filepath.Join(*out, report.PlotFile))
	return nil
}

func pluralRuns(n int) string {
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%d runs", n)
}
