package volume

import (
	"errors"

	"github.com/mooring-dev/mooring/backends"
	"github.com/mooring-dev/mooring/config"
)

func (m *Manager) newRBD(pool config.Pool) (backends.Backend, error) {
	return nil, errors.New("todo")
}
