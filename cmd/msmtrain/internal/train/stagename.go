package train

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
)

// stageNameRE is what a stage name may be: it becomes a directory of the run (RUN/<stage>, RUN/data/<stage>), a
// checkpoint prefix (RUN/checkpoints/<stage>-stepN) and a --set key (stages.<stage>.key), so it has no dots,
// slashes or spaces and does not start with - or _.
var stageNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// rundir.Reserved are the run directory's own entries that a stage directory would collide with (compared without
// case, for case-insensitive file systems). Names with dots (config.toml, metrics.jsonl, summary.json, .lock) are
// already excluded by stageNameRE.

// checkStageName reports why name cannot name a stage.
func checkStageName(name string) error {
	if !stageNameRE.MatchString(name) {
		return fmt.Errorf("%q is not a plain name: want letters, digits, _ and -, starting with a letter or digit (it names RUN/<stage>/)", name)
	}
	for _, r := range rundir.Reserved {
		if strings.EqualFold(name, r) {
			return fmt.Errorf("%q is reserved: the run directory's own %s/ would collide with the stage's (reserved: %s)",
				name, r, strings.Join(rundir.Reserved, ", "))
		}
	}
	return nil
}
