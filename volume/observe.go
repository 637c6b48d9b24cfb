package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/mooring-dev/mooring/devices"
)

// Observer is told about every Acquire, Release and Reconcile (op
// "acquire", "release", "gc"): how long it took and how it ended. The
// metrics package counts them.
type Observer interface {
	Observe(op string, took time.Duration, err error)
}

// WithObserver reports every operation to o.
func WithObserver(o Observer) Option { return func(m *Manager) { m.obs = o } }

// observe reports one operation; deferred with the named error result.
func (m *Manager) observe(op string, start time.Time, err *error) {
	if m.obs != nil {
		m.obs.Observe(op, time.Since(start), *err)
	}
}

// Reason names the cause of an error in a few words, for metric labels:
// one of the sentinels' names, "timeout", or "other".
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range []struct {
		err  error
		name string
	}{
		{ErrNotFound, "not_found"}, {ErrInUse, "in_use"}, {ErrNotAllowed, "not_allowed"},
		{ErrTooLarge, "too_large"}, {ErrExists, "exists"}, {ErrNotFormatted, "not_formatted"},
		{ErrUUIDMismatch, "uuid_mismatch"}, {ErrNoCreate, "no_create"}, {ErrInvalidOwner, "invalid_owner"},
		{ErrShrink, "shrink"}, {ErrNotSupported, "not_supported"}, {ErrNotReady, "not_ready"},
		{devices.ErrCorrupt, "corrupt"}, {devices.ErrNotOurs, "not_ours"}, {devices.ErrBusy, "busy"},
		{devices.ErrNoSpace, "no_space"}, {context.DeadlineExceeded, "timeout"}, {context.Canceled, "canceled"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}

// LastError is the last failure of an operation on a volume.
type LastError struct {
	Time  time.Time `json:"time"`
	Op    string    `json:"op"`
	Error string    `json:"error"`
}

func (j journal) lastErrorPath(tenant, name string) string {
	return filepath.Join(j.dir, "errors", tenant, name+recordSuffix)
}

// noteError records err as the volume's last error, for mooring volume
// stats. Best effort and lock-free: the last writer wins.
func (m *Manager) noteError(ctx context.Context, tenant, name, op string, err error) {
	if validKey(tenant, name) != nil {
		return
	}
	// Only a volume that exists keeps its last error: a refused request
	// for a name that does not exist leaves nothing behind.
	if _, rerr := m.readVolume(ctx, tenant, name); rerr != nil {
		return
	}
	e := LastError{Time: time.Now().UTC(), Op: op, Error: err.Error()}
	if werr := writeJSON(m.j.lastErrorPath(tenant, name), e); werr != nil {
		m.log.Warn("cannot record last error", "volume", tenant+"/"+name, "error", werr)
	}
}

// lastError returns the volume's last recorded error, or nil.
func (m *Manager) lastError(tenant, name string) (*LastError, error) {
	var e LastError
	err := readJSON(m.j.lastErrorPath(tenant, name), &e)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last error of %s/%s: %w", tenant, name, err)
	}
	return &e, nil
}
