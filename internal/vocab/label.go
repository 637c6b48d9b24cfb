package vocab

import "regexp"

// labelPattern is a DNS label (RFC 1123): what Kubernetes namespace names
// follow, and so tenants, pools and volume names. It has no '.', which
// lets backends join labels with dots reversibly.
var labelPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// IsLabel reports whether s is a DNS label: 1-63 characters a-z, 0-9 and
// '-', starting and ending with a letter or digit.
func IsLabel(s string) bool { return labelPattern.MatchString(s) }
