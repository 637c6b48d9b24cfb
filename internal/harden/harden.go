package harden

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxStdin bounds what a hook reads from stdin (the OCI state is small).
const MaxStdin = 1 << 20

// ErrTooLarge is returned when input exceeds its bound.
var ErrTooLarge = errors.New("input larger than allowed")

// Process clears the environment, keeping only the named variables, and
// changes the working directory to "/".
func Process(keep ...string) error {
	saved := make(map[string]string, len(keep))
	for _, k := range keep {
		if v, ok := os.LookupEnv(k); ok {
			saved[k] = v
		}
	}
	os.Clearenv()
	for k, v := range saved {
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("restore env %s: %w", k, err)
		}
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// ReadAll reads r up to limit bytes; more is ErrTooLarge.
func ReadAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read input: %w (%d bytes max)", ErrTooLarge, limit)
	}
	return b, nil
}
