// Package cli is the admin command line, `mooring`: volumes (create, ls,
// inspect, rm), attachments, gc, doctor and version, with human tables by
// default and --json everywhere. It runs no hooks: cmd/mooring sends
// `mooring hook <stage>` to package hook before any flag or config is
// read (the hook hardens itself).
package cli
