// Package atomicfile replaces files so that a reader (or a crash) sees the
// old content or the new, never a mix or a truncated file: write a temp
// file in the same directory, fsync it, rename it over the target, fsync
// the directory. The journal's records, the shim's config.json and new
// volume images all go through it.
//
// Not for files that other processes hold open and write: a rename gives
// them no new content.
package atomicfile
