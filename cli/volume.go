package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mooring-dev/mooring/annotations"
	"github.com/mooring-dev/mooring/backends"
	"github.com/mooring-dev/mooring/internal/vocab"
	"github.com/mooring-dev/mooring/volume"
)

func (e *env) volume(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: volume create|ls|inspect|rm|resize|snapshot|clone|restore|export|import|stats|fence", ErrUsage)
	}
	switch args[0] {
	case "create":
		return e.volumeCreate(args[1:])
	case "ls", "list":
		return e.volumeList(args[1:])
	case "inspect":
		return e.volumeInspect(args[1:])
	case "rm", "remove":
		return e.volumeRemove(args[1:])
	case "resize":
		return e.volumeResize(args[1:])
	case "snapshot", "snapshots":
		return e.volumeSnapshot(args[1:])
	case "clone":
		return e.volumeClone(args[1:])
	case "restore":
		return e.volumeRestore(args[1:])
	case "export":
		return e.volumeExport(args[1:])
	case "import":
		return e.volumeImport(args[1:])
	case "stats":
		return e.volumeStats(args[1:])
	case "fence":
		return e.volumeFence(args[1:])
	}
	return fmt.Errorf("%w: unknown volume command %q", ErrUsage, args[0])
}

func (e *env) volumeCreate(args []string) error {
	fs := flags("volume create")
	tenant := fs.String("tenant", "", "tenant (default: the config's default_tenant)")
	pool := fs.String("pool", "", "pool (default: the config's default_pool)")
	size := fs.String("size", "", "size, e.g. 10Gi (default: the pool's default_size)")
	fsType := fs.String("fs", "", "ext4, xfs or btrfs (default: the pool's default_fs)")
	mode := fs.String("mode", "", "filesystem (default) or block: a raw block volume, never formatted")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: volume create NAME", ErrUsage)
	}
	req := volume.Request{Name: pos[0], Pool: *pool, FS: *fsType, Mode: *mode}
	switch {
	case *mode != "" && *mode != annotations.ModeFilesystem && *mode != annotations.ModeBlock:
		return fmt.Errorf("volume create: mode %q: must be %s or %s", *mode, annotations.ModeFilesystem, annotations.ModeBlock)
	case req.IsBlock() && *fsType != "":
		return fmt.Errorf("volume create: --fs does not go with --mode block (mooring makes no filesystem on a raw block volume)")
	}
	if *size != "" {
		if req.Size, err = vocab.ParseSize(*size); err != nil {
			return fmt.Errorf("volume create: %w", err)
		}
		if req.Size == 0 {
			return fmt.Errorf("volume create: size must be more than zero")
		}
	}
	if *fsType != "" && !vocab.IsFilesystem(*fsType) {
		return fmt.Errorf("volume create: fs %q: must be one of %s", *fsType, strings.Join(vocab.Filesystems, ", "))
	}
	m, err := e.manager()
	if err != nil {
		return err
	}
	t := orDefault(*tenant, m.Config().DefaultTenant)
	rec, err := m.Create(e.ctx, t, req)
	if err != nil {
		return err
	}
	return e.print(rec, func(w io.Writer) {
		if rec.IsBlock() {
			fmt.Fprintf(w, "created %s (%s raw block volume in pool %s)\n", rec.Key(), vocab.Size(rec.Size), rec.Pool)
			return
		}
		fmt.Fprintf(w, "created %s (%s %s in pool %s, formatted on first use)\n", rec.Key(), vocab.Size(rec.Size), rec.FS, rec.Pool)
	})
}

// volumeView is a volume with who uses it, for ls and inspect.
type volumeView struct {
	volume.VolumeRecord
	// Used is what the volume really takes on disk (allocated blocks of a
	// sparse image); Size is what it was provisioned.
	Used        int64               `json:"used"`
	Attachments []volume.Attachment `json:"attachments"`
	// Lease is who holds a volume of a shared pool (inspect only).
	Lease *backends.LeaseStatus `json:"lease,omitempty"`
}

func (e *env) volumeViews() ([]volumeView, *volume.Manager, error) {
	m, err := e.manager()
	if err != nil {
		return nil, nil, err
	}
	vols, err := m.Volumes(e.ctx)
	if err != nil {
		return nil, nil, err
	}
	atts, err := m.Attachments()
	if err != nil {
		return nil, nil, err
	}
	views := make([]volumeView, len(vols))
	for i, v := range vols {
		used, _ := m.Used(e.ctx, v) // an image gone missing takes no space
		views[i] = volumeView{VolumeRecord: v, Used: used, Attachments: []volume.Attachment{}}
		for _, a := range atts {
			if a.VolumeID == v.ID {
				views[i].Attachments = append(views[i].Attachments, a)
			}
		}
	}
	return views, m, nil
}

func (e *env) volumeList(args []string) error {
	fs := flags("volume ls")
	tenant := fs.String("tenant", "", "only this tenant's volumes")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	views, _, err := e.volumeViews()
	if err != nil {
		return err
	}
	shown := []volumeView{}
	for _, v := range views {
		if *tenant == "" || v.Tenant == *tenant {
			shown = append(shown, v)
		}
	}
	return e.print(shown, func(w io.Writer) {
		rows := make([][]string, len(shown))
		for i, v := range shown {
			rows[i] = []string{v.Tenant, v.Name, v.Pool, vocab.Size(v.Size).String(), human(v.Used), fsColumn(v.VolumeRecord),
				strconv.FormatBool(v.Formatted), strconv.Itoa(len(v.Attachments)), age(v.Created)}
		}
		table(w, []string{"TENANT", "NAME", "POOL", "SIZE", "USED", "FS", "FORMATTED", "ATTACHED", "AGE"}, rows)
	})
}

func (e *env) volumeInspect(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: volume inspect [TENANT/]NAME", ErrUsage)
	}
	views, m, err := e.volumeViews()
	if err != nil {
		return err
	}
	tenant, name := splitName(args[0], m.Config().DefaultTenant)
	for _, v := range views {
		if v.Tenant == tenant && v.Name == name {
			lease, shared, err := m.Lease(e.ctx, v.VolumeRecord)
			if err != nil {
				return fmt.Errorf("volume %s: lease: %w", v.Key(), err)
			}
			if shared {
				v.Lease = &lease
			}
			return e.print(v, func(w io.Writer) {
				table(w, []string{"FIELD", "VALUE"}, append([][]string{
					{"volume", v.Key()}, {"id", v.ID}, {"pool", v.Pool + " (" + v.Driver + ")"},
					{"backing", v.Backing}, {"size", vocab.Size(v.Size).String()},
					{"fs", fsColumn(v.VolumeRecord) + " " + v.FSUUID}, {"formatted", strconv.FormatBool(v.Formatted)},
					{"created", v.Created.Format("2006-01-02 15:04:05Z")}, {"attachments", strconv.Itoa(len(v.Attachments))},
				}, dataRows(v.VolumeRecord)...))
				for _, a := range v.Attachments {
					fmt.Fprintf(w, "  %s (%s, %s) at %s, %s\n", a.Owner.ID, a.Owner.Frontend, a.Owner.Scope, a.Target, a.Step)
				}
				if v.Lease != nil {
					holder := "free"
					if v.Lease.Holder != "" {
						holder = "node " + v.Lease.Holder + " since " + v.Lease.Since.Format("2006-01-02 15:04:05Z")
					}
					fmt.Fprintf(w, "lease: %s\n", holder)
					for _, t := range v.Lease.Takeovers {
						fmt.Fprintf(w, "  %s\n", t)
					}
				}
			})
		}
	}
	return fmt.Errorf("volume %s/%s: %w", tenant, name, volume.ErrNotFound)
}

func (e *env) volumeRemove(args []string) error {
	m, tenant, name, err := e.namedVolume("rm", args)
	if err != nil {
		return err
	}
	if err := m.Remove(e.ctx, tenant, name); err != nil {
		if errors.Is(err, volume.ErrInUse) {
			return fmt.Errorf("%w; stop the containers using it first", err)
		}
		return fmt.Errorf("volume rm %s/%s: %w", tenant, name, err)
	}
	return e.print(map[string]string{"removed": tenant + "/" + name}, func(w io.Writer) {
		fmt.Fprintf(w, "removed %s/%s and its data\n", tenant, name)
	})
}

func splitName(s, defaultTenant string) (tenant, name string) {
	if t, n, ok := strings.Cut(s, "/"); ok {
		return t, n
	}
	return defaultTenant, s
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// namedVolume parses the arguments of a command on one volume:
// [--tenant T] [TENANT/]NAME.
func (e *env) namedVolume(cmd string, args []string) (_ *volume.Manager, tenant, name string, _ error) {
	fs := flags("volume " + cmd)
	tenantFlag := fs.String("tenant", "", "the volume's tenant (default: the config's default_tenant)")
	pos, err := parse(fs, args)
	if err != nil {
		return nil, "", "", err
	}
	if len(pos) != 1 {
		return nil, "", "", fmt.Errorf("%w: volume %s [--tenant T] [TENANT/]NAME", ErrUsage, cmd)
	}
	m, err := e.manager()
	if err != nil {
		return nil, "", "", err
	}
	tenant, name = splitName(pos[0], orDefault(*tenantFlag, m.Config().DefaultTenant))
	if *tenantFlag != "" && tenant != *tenantFlag {
		return nil, "", "", fmt.Errorf("%w: --tenant %s and %s name two tenants", ErrUsage, *tenantFlag, pos[0])
	}
	return m, tenant, name, nil
}

// volumeFence takes a volume of a shared pool over for this node from a
// node that is dead or cut off.
func (e *env) volumeFence(args []string) error {
	m, tenant, name, err := e.namedVolume("fence", args)
	if err != nil {
		return err
	}
	what, err := m.Fence(e.ctx, tenant, name)
	if err != nil {
		return err
	}
	return e.print(map[string]string{"fenced": tenant + "/" + name, "takeover": what}, func(w io.Writer) {
		fmt.Fprintln(w, what)
	})
}

// fsColumn is a volume's filesystem, or "block" for a raw block volume
// (which has none).
func fsColumn(v volume.VolumeRecord) string {
	if v.IsBlock() {
		return annotations.ModeBlock
	}
	return v.FS
}
