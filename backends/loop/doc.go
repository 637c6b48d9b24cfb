// Package loop is the driver of loop pools: each volume is a sparse image
// file in the pool's directory, attached through a loop device tagged with
// the volume's id (autoclear, direct I/O where the backing filesystem
// allows it).
package loop
