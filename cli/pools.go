package cli

import (
	"fmt"
	"io"
	"strconv"
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
	usage, err := m.Pools(e.ctx)
	if err != nil {
		return err
	}
	return e.print(usage, func(w io.Writer) {
		rows := make([][]string, len(usage))
		for i, u := range usage {
			free := "-"
			if u.Driver == "loop" {
				free = human(u.Free)
			}
			rows[i] = []string{u.Pool, u.Driver, strconv.Itoa(u.Volumes), human(u.Provisioned), human(u.Capacity), human(u.Used), free}
		}
		table(w, []string{"POOL", "DRIVER", "VOLUMES", "PROVISIONED", "CAPACITY", "USED", "FREE"}, rows)
	})
}
