// Package report compares training runs: it loads run directories written by
// the trainer (config.toml, metrics.jsonl, and the optional summary.json and
// eval/*.json) and renders a Markdown report and a PNG of the loss curves,
// for `msmtrain report RUN_DIR...`.
//
// Everything is pure Go: the plot is drawn with image/draw and the fixed
// 7x13 font of golang.org/x/image/font/basicfont, with no external tools.
//
// Typical use:
//
//	var runs []*report.Run
//	for _, dir := range dirs {
//		r, err := report.Load(dir)
//		if err != nil {
//			return err
//		}
//		runs = append(runs, r)
//	}
//	return report.Write(runs, outDir) // outDir/report.md, outDir/loss.png
package report
