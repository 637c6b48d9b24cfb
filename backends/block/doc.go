// Package block is the driver of block pools: each volume is one of the
// block devices the admin listed, whole. mooring never creates, resizes or
// deletes such a device; deleting a volume forgets it.
package block
