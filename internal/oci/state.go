package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mooring-dev/mooring/internal/harden"
)

// ReadState reads the OCI state a runtime passes a hook on stdin: at most
// harden.MaxStdin bytes, one JSON object, with the fields mooring uses
// validated. Unknown fields are allowed: runtimes add their own (crun
// does).
func ReadState(r io.Reader) (*specs.State, error) {
	b, err := harden.ReadAll(r, harden.MaxStdin)
	if err != nil {
		return nil, fmt.Errorf("OCI state: %w", err)
	}
	return DecodeState(b)
}

// DecodeState decodes and validates one OCI state (see ReadState).
func DecodeState(b []byte) (*specs.State, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var s specs.State
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("OCI state on stdin: %w", err)
	}
	if dec.More() {
		return nil, errors.New("OCI state on stdin: trailing data")
	}
	switch {
	case s.ID == "":
		return nil, errors.New("OCI state: no container id")
	case !filepath.IsAbs(s.Bundle) || filepath.Clean(s.Bundle) != s.Bundle:
		return nil, fmt.Errorf("OCI state: bundle %q is not an absolute clean path", s.Bundle)
	case s.Pid < 0:
		return nil, fmt.Errorf("OCI state: bad pid %d", s.Pid)
	}
	return &s, nil
}
