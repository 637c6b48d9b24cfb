// Package backends is the contract between mooring's core (package volume)
// and its pool drivers: each driver (loop, block, rbd) is one package that
// implements Backend, and the core picks one per pool from the pool's
// driver, once. The core sequences journal, locks and steps (create,
// attach, check or format, mount; unmount, detach); a backend only makes,
// attaches, detaches, finds and deletes the backing store of a volume.
package backends
