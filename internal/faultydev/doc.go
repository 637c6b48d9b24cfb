// Package faultydev serves block devices whose reads fail, for root tests
// of what mooring does with a device it cannot read (device mapper's
// "error" target is not available everywhere): a loop device backed by a
// file in an in-process FUSE filesystem that answers EIO to reads of a
// chosen head of the file, and counts the writes that reach it.
//
// Test support only: nothing in a mooring binary imports it.
package faultydev
