package vocab

import "slices"

// Filesystems mooring can format a volume with; a pool may allow fewer.
var Filesystems = []string{"ext4", "xfs", "btrfs"}

// IsFilesystem reports whether fs is one of Filesystems.
func IsFilesystem(fs string) bool { return slices.Contains(Filesystems, fs) }
