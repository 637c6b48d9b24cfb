package volume

import "github.com/mooring-dev/mooring/devices"

// realDevices are the host's loop devices, tools, mounts and block devices.
func realDevices() Devices {
	return Devices{
		Loops:  devices.NewLoops(),
		FS:     devices.NewFilesystems(),
		Mounts: devices.NewMounter(),
		Blocks: devices.NewBlocks(),
		Data:   devices.NewDataOps(),
	}
}
