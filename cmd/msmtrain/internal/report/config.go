package report

import (
	"errors"
	"fmt"
	"os"

	"github.com/BurntSushi/toml"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/tomlkeys"
)

// loadConfig reads a resolved config.toml and flattens it to dotted keys ("stages.0.train.lr"), values as TOML
// writes them (tomlkeys.Flatten). It decodes generically (no schema): the report compares whatever the trainer
// saved, including keys this package has never heard of.
func loadConfig(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var v map[string]any
	if err := toml.Unmarshal(b, &v); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("report: %w", &LineError{Path: path, Line: pe.Position.Line, Err: errors.New(pe.Message)})
		}
		return nil, fmt.Errorf("report: %s: %w", path, err)
	}
	return tomlkeys.Flatten(v), nil
}
