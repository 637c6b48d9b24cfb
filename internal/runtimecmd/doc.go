// Package runtimecmd reads an OCI runtime's command line (runc's, and
// crun's which follows it) for what mooring needs to know: the state
// root, the verb, the bundle, the container id and the log file. The shim
// reads its own arguments with it; the hook reads its parent's (the
// runtime that runs it), which is how a hook learns the runtime root the
// OCI state does not carry. It is pure: strings in, values out.
package runtimecmd
