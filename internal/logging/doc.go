// Package logging gives the hook, the shim and the plugin a log/slog logger
// that writes to a log file: their stderr is often swallowed by the runtime
// and their stdout belongs to the runtime protocol.
package logging
