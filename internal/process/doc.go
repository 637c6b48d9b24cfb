// Package process identifies a process across pid reuse by its pid and its
// start time, for helpers (FUSE exports, rbd-nbd) that outlive the command
// that started them and are found again later by a record.
package process
