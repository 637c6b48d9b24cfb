package annotations

import (
	"fmt"
	"strings"

	"github.com/mooring-dev/mooring/internal/vocab"
)

// SplitSnapshot splits a snapshot reference NAME@SNAP (the field "from",
// and the CLI's clone, restore and export arguments) into a volume name
// and a snapshot name, both DNS labels.
func SplitSnapshot(ref string) (volume, snapshot string, err error) {
	volume, snapshot, ok := strings.Cut(ref, "@")
	if !ok {
		return "", "", fmt.Errorf("%q: want VOLUME@SNAPSHOT", limit(ref))
	}
	if !vocab.IsLabel(volume) || !vocab.IsLabel(snapshot) {
		return "", "", fmt.Errorf("%q: want VOLUME@SNAPSHOT, each 1-63 characters a-z, 0-9 and '-', starting and ending with a letter or digit", limit(ref))
	}
	return volume, snapshot, nil
}

// checkFrom checks the field "from": empty, or a snapshot of another
// volume of the same tenant.
func checkFrom(v Volume) error {
	if v.From == "" {
		return nil
	}
	origin, _, err := SplitSnapshot(v.From)
	if err != nil {
		return fmt.Errorf("from %w", err)
	}
	if origin == v.Name {
		return fmt.Errorf("from %q: a volume cannot be cloned from its own snapshot", v.From)
	}
	return nil
}
