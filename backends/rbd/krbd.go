package rbd

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/mooring-dev/mooring/internal/process"
)

// deviceType is the -t argument of `rbd device` for a data path.
func deviceType(m Map) string {
	if m == MapNBD {
		return "nbd"
	}
	return "krbd"
}

// mapArgs maps an image: the kernel driver (krbd) or an rbd-nbd daemon
// (nbd) that `rbd device map` starts and that daemonizes itself.
func mapArgs(m Map, spec string) []string {
	return []string{"device", "map", "-t", deviceType(m), spec}
}

func unmapArgs(m Map, device string) []string {
	return []string{"device", "unmap", "-t", deviceType(m), device}
}

func listArgs(m Map) []string {
	return []string{"device", "list", "-t", deviceType(m), "--format", "json"}
}

// parseMapped decodes the device path `rbd device map` prints.
func parseMapped(out []byte) (string, error) {
	dev := strings.TrimSpace(string(out))
	if !strings.HasPrefix(dev, "/dev/rbd") && !strings.HasPrefix(dev, "/dev/nbd") || strings.ContainsAny(dev, " \n") {
		return "", fmt.Errorf("rbd device map: unexpected output %.80q", out)
	}
	return dev, nil
}

// mappedEntry is one line of `rbd device list --format json`: kernel rbd
// names the image "name" and its id is the device number; rbd-nbd names it
// "image" and its id is the daemon's pid.
type mappedEntry struct {
	ID     json.RawMessage `json:"id"`
	Pool   string          `json:"pool"`
	Name   string          `json:"name"`
	Image  string          `json:"image"`
	Snap   string          `json:"snap"`
	Device string          `json:"device"`
}

// parseDeviceList returns the mooring images of pool mapped on this host.
func parseDeviceList(m Map, pool string, out []byte) ([]Attachment, error) {
	var entries []mappedEntry
	if len(strings.TrimSpace(string(out))) > 0 {
		if err := json.Unmarshal(out, &entries); err != nil {
			return nil, fmt.Errorf("rbd device list: %w", err)
		}
	}
	var atts []Attachment
	for _, e := range entries {
		image := e.Name
		if image == "" {
			image = e.Image
		}
		if _, _, ok := ParseImageName(image); !ok || e.Pool != pool || (e.Snap != "" && e.Snap != "-") {
			continue
		}
		a := Attachment{Image: image, Map: m, Device: e.Device}
		if m == MapNBD {
			pid, err := strconv.Atoi(strings.Trim(string(e.ID), `"`))
			if err != nil {
				return nil, fmt.Errorf("rbd device list: nbd id %s: not a pid", e.ID)
			}
			a.Helper = &Helper{Tool: "rbd-nbd", ID: process.ID{PID: pid}}
			if id, err := process.Of(pid); err == nil {
				a.Helper.ID = id
			}
		}
		atts = append(atts, a)
	}
	return atts, nil
}

func (d *DataPath) mapDevice(ctx context.Context, image string) (*Attachment, error) {
	out, err := d.Cluster.rbd(ctx, mapArgs(d.Map, d.Cluster.spec(image))...)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", image, err)
	}
	dev, err := parseMapped(out)
	if err != nil {
		return nil, err
	}
	mapped, err := d.mappedDevices(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range mapped {
		if a.Device == dev {
			return &a, nil
		}
	}
	return &Attachment{Image: image, Map: d.Map, Device: dev}, nil
}

func (d *DataPath) unmapDevice(ctx context.Context, a *Attachment) error {
	mapped, err := d.mappedDevices(ctx)
	if err != nil {
		return err
	}
	for _, m := range mapped {
		if m.Device == a.Device && m.Image == a.Image {
			if _, err := d.Cluster.rbd(ctx, unmapArgs(a.Map, a.Device)...); err != nil {
				return fmt.Errorf("unmap %s from %s: %w", a.Image, a.Device, err)
			}
			return nil
		}
	}
	return nil // not mapped (any more): nothing to do
}

func (d *DataPath) mappedDevices(ctx context.Context) ([]Attachment, error) {
	out, err := d.Cluster.rbd(ctx, listArgs(d.Map)...)
	if err != nil {
		return nil, fmt.Errorf("list mapped devices: %w", err)
	}
	return parseDeviceList(d.Map, d.Cluster.Pool, out)
}
