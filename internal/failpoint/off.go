//go:build !failpoints

package failpoint

// Enabled says whether failpoints are compiled in.
const Enabled = false

// Hit does nothing: this binary was built without the failpoints tag.
func Hit(string) {}

// Env lists the environment a process that clears its own must keep for
// failpoints to work.
func Env() []string { return nil }
