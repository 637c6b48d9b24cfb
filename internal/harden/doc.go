// Package harden puts a hook or shim process into a known state before it
// reads tenant-controlled input: empty environment, working directory "/",
// and bounded reads of stdin (security rule 3 of DESIGN.md).
package harden
