// Package cli is the admin command line, `mooring`: volumes (create, ls,
// inspect, rm), attachments, gc, doctor and version, with human tables by
// default and --json everywhere. `mooring hook <stage>` is dispatched to
// package hook before any flag or config is read: the hook hardens itself.
package cli
