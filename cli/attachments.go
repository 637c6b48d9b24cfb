package cli

import (
	"fmt"
	"io"

	"github.com/mooring-dev/mooring/volume"
)

func (e *env) attachments() error {
	m, err := e.manager()
	if err != nil {
		return err
	}
	atts, err := m.Attachments()
	if err != nil {
		return err
	}
	if atts == nil {
		atts = []volume.Attachment{}
	}
	return e.print(atts, func(w io.Writer) {
		rows := make([][]string, len(atts))
		for i, a := range atts {
			rows[i] = []string{a.Volume, a.Owner.ID, a.Owner.Frontend, orDefault(a.Owner.Scope, "-"), a.Target, a.Device, string(a.Step), age(a.Since)}
		}
		table(w, []string{"VOLUME", "OWNER", "FRONTEND", "SCOPE", "TARGET", "DEVICE", "STEP", "AGE"}, rows)
	})
}

func (e *env) gc() error {
	m, err := e.manager()
	if err != nil {
		return err
	}
	rep, err := m.Reconcile(e.ctx, volume.OwnerAlive)
	if perr := e.print(rep, func(w io.Writer) {
		for _, a := range rep.Released {
			fmt.Fprintf(w, "released %s from %s (container gone)\n", a.Volume, a.Owner.ID)
		}
		for _, l := range rep.Lost {
			fmt.Fprintf(w, "released %s from %s (still running, but this node lost the volume: %s)\n", l.Volume, l.Owner.ID, l.Reason)
		}
		for _, d := range rep.Unmounted {
			fmt.Fprintf(w, "unmounted orphan %s\n", d)
		}
		for _, d := range rep.Detached {
			fmt.Fprintf(w, "detached orphan %s\n", d)
		}
		fmt.Fprintf(w, "gc: %d released, %d kept\n", len(rep.Released)+len(rep.Lost), rep.Kept)
	}); perr != nil {
		return perr
	}
	return err
}
