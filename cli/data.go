package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/internal/vocab"
	"github.com/mooring-dev/mooring/volume"
)

// volumeResize: volume resize [TENANT/]NAME --size SIZE
func (e *env) volumeResize(args []string) error {
	fs := flags("volume resize")
	size := fs.String("size", "", "new size, e.g. 20Gi (only larger than now)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *size == "" {
		return fmt.Errorf("%w: volume resize [TENANT/]NAME --size 20Gi", ErrUsage)
	}
	n, err := vocab.ParseSize(*size)
	if err != nil {
		return fmt.Errorf("volume resize: %w", err)
	}
	m, tenant, name, err := e.managerFor(pos[0])
	if err != nil {
		return err
	}
	rec, err := m.Resize(e.ctx, tenant, name, int64(n))
	if err != nil {
		return err
	}
	return e.print(rec, func(w io.Writer) {
		if rec.GrowPending {
			fmt.Fprintf(w, "%s: image grown to %s; the filesystem grows when the volume is next attached\n", rec.Key(), vocab.Size(rec.Size))
			return
		}
		fmt.Fprintf(w, "%s: %s\n", rec.Key(), vocab.Size(rec.Size))
	})
}

// volumeSnapshot: volume snapshot [TENANT/]NAME SNAP | ls [[TENANT/]NAME] | rm [TENANT/]NAME@SNAP
func (e *env) volumeSnapshot(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "ls", "list":
			return e.snapshotList(args[1:])
		case "rm", "remove":
			return e.snapshotRemove(args[1:])
		}
	}
	if len(args) != 2 {
		return fmt.Errorf("%w: volume snapshot [TENANT/]NAME SNAP | snapshot ls [[TENANT/]NAME] | snapshot rm [TENANT/]NAME@SNAP", ErrUsage)
	}
	m, tenant, name, err := e.managerFor(args[0])
	if err != nil {
		return err
	}
	s, err := m.Snapshot(e.ctx, tenant, name, args[1])
	if err != nil {
		return err
	}
	return e.print(s, func(w io.Writer) {
		how := "volume detached"
		if s.Frozen {
			how = "filesystem frozen for the copy"
		}
		fmt.Fprintf(w, "snapshot %s/%s taken (%s, %s)\n", tenant, s.Ref(), s.Method, how)
	})
}

func (e *env) snapshotList(args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("%w: volume snapshot ls [[TENANT/]NAME]", ErrUsage)
	}
	m, err := e.manager()
	if err != nil {
		return err
	}
	var vols []volume.VolumeRecord
	if len(args) == 1 {
		tenant, name := splitName(args[0], m.Config().DefaultTenant)
		rec, err := m.Volume(e.ctx, tenant, name)
		if err != nil {
			return err
		}
		vols = []volume.VolumeRecord{rec}
	} else if vols, err = m.Volumes(e.ctx); err != nil {
		return err
	}
	snaps := []volume.SnapshotRecord{}
	for _, v := range vols {
		s, err := m.Snapshots(e.ctx, v.Tenant, v.Name)
		if err != nil {
			return err
		}
		snaps = append(snaps, s...)
	}
	return e.print(snaps, func(w io.Writer) {
		rows := make([][]string, len(snaps))
		for i, s := range snaps {
			state := "ready"
			if s.Copying {
				state = "incomplete (mooring gc removes it)"
			}
			rows[i] = []string{s.Volume, s.Name, vocab.Size(s.Size).String(), s.Method, strconv.FormatBool(s.Frozen), state, age(s.Created)}
		}
		table(w, []string{"VOLUME", "SNAPSHOT", "SIZE", "METHOD", "FROZEN", "STATE", "AGE"}, rows)
	})
}

func (e *env) snapshotRemove(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: volume snapshot rm [TENANT/]NAME@SNAP", ErrUsage)
	}
	m, tenant, name, snap, err := e.snapshotRef(args[0])
	if err != nil {
		return err
	}
	if err := m.RemoveSnapshot(e.ctx, tenant, name, snap); err != nil {
		return fmt.Errorf("volume snapshot rm %s/%s@%s: %w", tenant, name, snap, err)
	}
	return e.print(map[string]string{"removed": tenant + "/" + name + "@" + snap}, func(w io.Writer) {
		fmt.Fprintf(w, "removed snapshot %s/%s@%s\n", tenant, name, snap)
	})
}

// volumeClone: volume clone [TENANT/]NAME@SNAP NEW [--size SIZE]
func (e *env) volumeClone(args []string) error {
	fs := flags("volume clone")
	size := fs.String("size", "", "size of the clone (default: the snapshot's)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("%w: volume clone [TENANT/]NAME@SNAP NEW", ErrUsage)
	}
	m, tenant, name, snap, err := e.snapshotRef(pos[0])
	if err != nil {
		return err
	}
	req := volume.Request{Name: pos[1], From: name + "@" + snap}
	if strings.Contains(pos[1], "/") {
		return fmt.Errorf("volume clone: %q: a clone belongs to its origin's tenant; give only a name", pos[1])
	}
	if *size != "" {
		if req.Size, err = vocab.ParseSize(*size); err != nil {
			return fmt.Errorf("volume clone: %w", err)
		}
	}
	rec, err := m.Clone(e.ctx, tenant, req)
	if err != nil {
		return err
	}
	return e.print(rec, func(w io.Writer) {
		fmt.Fprintf(w, "cloned %s from %s (%s, new %s UUID %s)\n", rec.Key(), rec.Origin, rec.CopyMethod, rec.FS, rec.FSUUID)
	})
}

// volumeRestore: volume restore [TENANT/]NAME@SNAP
func (e *env) volumeRestore(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: volume restore [TENANT/]NAME@SNAP", ErrUsage)
	}
	m, tenant, name, snap, err := e.snapshotRef(args[0])
	if err != nil {
		return err
	}
	rec, err := m.Restore(e.ctx, tenant, name, snap)
	if err != nil {
		return err
	}
	return e.print(rec, func(w io.Writer) {
		fmt.Fprintf(w, "restored %s from snapshot %s (%s)\n", rec.Key(), snap, rec.CopyMethod)
	})
}

// volumeExport: volume export [TENANT/]NAME [--snapshot S] > FILE
func (e *env) volumeExport(args []string) error {
	fs := flags("volume export")
	snap := fs.String("snapshot", "", "export this snapshot (the volume may be attached)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: volume export [TENANT/]NAME [--snapshot S] > FILE", ErrUsage)
	}
	if isTerminal(e.stdout) {
		return fmt.Errorf("volume export: stdout is a terminal; redirect it to a file or a pipe")
	}
	m, tenant, name, err := e.managerFor(pos[0])
	if err != nil {
		return err
	}
	return m.Export(e.ctx, tenant, name, *snap, e.stdout, e.progress("export"))
}

// volumeImport: volume import NAME [--tenant T] [--pool P] < FILE
func (e *env) volumeImport(args []string) error {
	fs := flags("volume import")
	pool := fs.String("pool", "", "pool (default: the config's default_pool)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: volume import [TENANT/]NAME [--pool P] < FILE", ErrUsage)
	}
	if isTerminal(e.stdin) {
		return fmt.Errorf("volume import: stdin is a terminal; redirect a file from mooring volume export into it")
	}
	m, tenant, name, err := e.managerFor(pos[0])
	if err != nil {
		return err
	}
	rec, err := m.Import(e.ctx, tenant, volume.Request{Name: name, Pool: *pool}, e.stdin, e.progress("import"))
	if err != nil {
		return err
	}
	return e.print(rec, func(w io.Writer) {
		fmt.Fprintf(w, "imported %s (%s %s, UUID %s) into pool %s\n", rec.Key(), vocab.Size(rec.Size), rec.FS, rec.FSUUID, rec.Pool)
	})
}

// volumeStats: volume stats [[TENANT/]NAME]
func (e *env) volumeStats(args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("%w: volume stats [[TENANT/]NAME]", ErrUsage)
	}
	m, err := e.manager()
	if err != nil {
		return err
	}
	var tenant, name string
	if len(args) == 1 {
		tenant, name = splitName(args[0], m.Config().DefaultTenant)
	}
	vols, pools, err := m.Stats(e.ctx, tenant, name)
	if err != nil {
		return err
	}
	if vols == nil {
		vols = []volume.VolumeStats{}
	}
	out := struct {
		Volumes []volume.VolumeStats `json:"volumes"`
		Pools   []volume.PoolUsage   `json:"pools"`
	}{vols, pools}
	return e.print(out, func(w io.Writer) {
		rows := make([][]string, len(vols))
		for i, v := range vols {
			used, avail, inodes := "-", "-", "-"
			if f := v.Filesystem; f != nil {
				used, avail = bytesString(f.UsedBytes), bytesString(f.AvailableBytes)
				inodes = fmt.Sprintf("%d/%d", f.InodesUsed, f.Inodes)
			}
			lastErr := "-"
			if v.LastError != nil {
				lastErr = v.LastError.Time.Format("2006-01-02 15:04:05Z") + " " + v.LastError.Op + ": " + v.LastError.Error
			}
			rows[i] = []string{v.Tenant + "/" + v.Name, v.Pool, bytesString(v.ProvisionedBytes), bytesString(v.AllocatedBytes),
				used, avail, inodes, strconv.Itoa(v.Snapshots), strconv.Itoa(v.Attachments), lastErr}
		}
		table(w, []string{"VOLUME", "POOL", "SIZE", "ALLOCATED", "USED", "AVAILABLE", "INODES", "SNAPSHOTS", "ATTACHED", "LAST ERROR"}, rows)
	})
}

// managerFor returns the manager and the tenant and name of [TENANT/]NAME.
func (e *env) managerFor(arg string) (*volume.Manager, string, string, error) {
	m, err := e.manager()
	if err != nil {
		return nil, "", "", err
	}
	tenant, name := splitName(arg, m.Config().DefaultTenant)
	return m, tenant, name, nil
}

// snapshotRef splits [TENANT/]NAME@SNAP.
func (e *env) snapshotRef(arg string) (*volume.Manager, string, string, string, error) {
	m, tenant, ref, err := e.managerFor(arg)
	if err != nil {
		return nil, "", "", "", err
	}
	name, snap, err := annotations.SplitSnapshot(ref)
	if err != nil {
		return nil, "", "", "", fmt.Errorf("%w: snapshot %w", ErrUsage, err)
	}
	return m, tenant, name, snap, nil
}

// progress reports a transfer on stderr when it is a terminal.
func (e *env) progress(what string) volume.Progress {
	if !isTerminal(e.stderr) {
		return nil
	}
	return func(done, total int64) {
		fmt.Fprintf(e.stderr, "\r%s: %s of %s (%d%%)", what, bytesString(done), bytesString(total), done*100/max(total, 1))
		if done == total {
			fmt.Fprintln(e.stderr)
		}
	}
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// bytesString writes n with a binary unit and one decimal, for people.
func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	f, i := float64(n), -1
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + []string{"Ki", "Mi", "Gi", "Ti", "Pi"}[i]
}

// dataRows are volume inspect's rows for the data services' state.
func dataRows(v volume.VolumeRecord) [][]string {
	var rows [][]string
	if v.Origin != "" {
		rows = append(rows, []string{"origin", v.Origin})
	}
	if v.CopyMethod != "" {
		rows = append(rows, []string{"copy", v.CopyMethod})
	}
	if v.GrowPending {
		rows = append(rows, []string{"grow", "pending: the filesystem grows at the next attach or mooring gc"})
	}
	if v.State != "" {
		rows = append(rows, []string{"state", v.State})
	}
	return rows
}
