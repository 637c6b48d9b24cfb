// Package vocab holds the words tenant requests, the admin config and the
// core share: the DNS-label rule names follow, the filesystems mooring
// formats, and byte sizes with units.
//
// It is a leaf: it imports nothing of mooring, so annotations, config,
// volume and the backends agree on one definition instead of each keeping
// a copy. It knows no policy (which pool allows what: see package config).
package vocab
