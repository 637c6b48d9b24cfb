package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"unicode/utf8"

	"github.com/mooring-dev/mooring/internal/procstat"
	"github.com/mooring-dev/mooring/internal/vocab"
)

// ownerIDPattern admits the container ids of runc, containerd, docker,
// podman and CRI-O.
var ownerIDPattern = vocab.Name{Min: 1, Max: 128, First: vocab.IsAlnum, Rest: func(b byte) bool {
	return vocab.IsAlnum(b) || b == '_' || b == '.' || b == '+' || b == '-'
}}

// frontendPattern names a front-end ("hook", "shim", "nri", ...).
var frontendPattern = vocab.Name{Min: 1, Max: 16, First: vocab.IsLower, Rest: vocab.IsLower}

// maxScopeBytes bounds an owner's scope (a runtime root is a path).
const maxScopeBytes = 4096

// Key is the owner's identity: front-end, scope and container id. Two
// owners with the same key are the same container; the same id in two
// scopes (two runc roots) is two containers.
func (o Owner) Key() string {
	return o.Frontend + ":" + o.Scope + ":" + o.ID
}

// SameAs reports whether o and other are the same container.
func (o Owner) SameAs(other Owner) bool {
	return o.Frontend == other.Frontend && o.Scope == other.Scope && o.ID == other.ID
}

// fileName is the journal file name of the owner's claims: every part of
// the key, without path separators. The scope (often a path) is hashed;
// the record itself keeps it in full.
func (o Owner) fileName() string {
	sum := sha256.Sum256([]byte(o.Scope))
	return o.Frontend + "_" + hex.EncodeToString(sum[:8]) + "_" + o.ID + recordSuffix
}

// validateKey checks the parts of the key; they become a file name.
func (o Owner) validateKey() error {
	switch {
	case !frontendPattern.Match(o.Frontend):
		return fmt.Errorf("%w: front-end %q must be 1-16 letters a-z", ErrInvalidOwner, o.Frontend)
	case !ownerIDPattern.Match(o.ID):
		return fmt.Errorf("%w: id %q must be 1-128 letters, digits, '_', '.', '+' or '-', starting with a letter or digit", ErrInvalidOwner, o.ID)
	case len(o.Scope) > maxScopeBytes || !utf8.ValidString(o.Scope) || bytes.IndexByte([]byte(o.Scope), 0) >= 0:
		return fmt.Errorf("%w: scope %q must be UTF-8 without NUL, at most %d bytes", ErrInvalidOwner, o.Scope, maxScopeBytes)
	}
	return nil
}

func (o Owner) validate() error {
	if err := o.validateKey(); err != nil {
		return err
	}
	return validTenant(o.Tenant)
}

func validTenant(t string) error {
	if !vocab.IsLabel(t) {
		return fmt.Errorf("%w: tenant %q must be a DNS label", ErrInvalidOwner, t)
	}
	return nil
}

// ProcessStart returns the start time of pid in clock ticks since boot
// (field 22 of /proc/<pid>/stat); with the pid it identifies a process
// across pid reuse.
func ProcessStart(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

// procStat returns the state (field 3: R, S, Z for a zombie, ...) and the
// start time of pid.
func procStat(pid int) (state byte, start uint64, err error) {
	return procstat.Read(pid)
}

// OwnerAlive reports whether the owner's recorded identity still exists:
// its process (same pid and start time, not a zombie: an exited container
// whose parent has not reaped it is gone), or its runtime state (a file
// or directory). An owner with neither recorded is assumed alive: only
// its front-end (the NRI plugin's Synchronize) can tell.
func OwnerAlive(o Owner) bool {
	if o.PID <= 0 && o.StatePath == "" {
		return true
	}
	if o.PID > 0 {
		state, start, err := procStat(o.PID)
		if err == nil && state != 'Z' && state != 'X' && (o.PIDStart == 0 || start == o.PIDStart) {
			return true
		}
	}
	if o.StatePath != "" {
		_, err := os.Stat(o.StatePath)
		return !errors.Is(err, fs.ErrNotExist)
	}
	return false
}

// UpdateOwner records owner's new process identity (PID, PIDStart,
// StatePath) in every claim of the owner with the same key, under each
// volume's lock. The shim calls it once the runtime has created the
// container: until then the claim names the shim's own process.
func (m *Manager) UpdateOwner(ctx context.Context, owner Owner) error {
	return m.eachClaim("update owner", owner, owner.SameAs, func(a Attachment) error {
		return m.updateClaimOwner(ctx, a, owner)
	})
}

// eachClaim calls fn for every claim whose owner match accepts and joins
// the errors, going on after a failure. owner names the pass in errors.
func (m *Manager) eachClaim(what string, owner Owner, match func(Owner) bool, fn func(Attachment) error) error {
	if err := owner.validateKey(); err != nil {
		return err
	}
	all, err := m.j.attachments()
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, owner.Key(), err)
	}
	var errs []error
	for _, a := range all {
		if match(a.Owner) {
			errs = append(errs, fn(a))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s %s: %w", what, owner.Key(), err)
	}
	return nil
}

func (m *Manager) updateClaimOwner(ctx context.Context, a Attachment, owner Owner) error {
	tenant, name := splitKey(a.Volume)
	lock, err := m.lockVolume(ctx, tenant, name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	cur, ok, err := m.j.findAttachment(a.VolumeID, a.Owner)
	if err != nil || !ok {
		return err // released meanwhile
	}
	cur.Owner.PID, cur.Owner.PIDStart, cur.Owner.StatePath = owner.PID, owner.PIDStart, owner.StatePath
	return m.j.updateAttachment(cur)
}
