package cli

import (
	"fmt"
	"io"
	"strconv"

	"github.com/mooring-dev/mooring/annotations"
)

// pools lists each pool's provisioned bytes against its capacity and what
// its volumes really use.
func (e *env) pools(args []string) error {
	if len(args) > 1 || len(args) == 1 && args[0] != "ls" {
		return fmt.Errorf("%w: pools ls", ErrUsage)
	}
	m, err := e.manager()
	if err != nil {
		return err
	}
	usage, err := m.Pools()
	if err != nil {
		return err
	}
	return e.print(usage, func(w io.Writer) {
		rows := make([][]string, len(usage))
		for i, u := range usage {
			free := "-"
			if u.Driver == "loop" {
				free = annotations.Size(u.Free).String()
			}
			rows[i] = []string{u.Pool, u.Driver, strconv.Itoa(u.Volumes), annotations.Size(u.Provisioned).String(),
				annotations.Size(u.Capacity).String(), annotations.Size(u.Used).String(), free}
		}
		table(w, []string{"POOL", "DRIVER", "VOLUMES", "PROVISIONED", "CAPACITY", "USED", "FREE"}, rows)
	})
}
