package rbd

import (
	"fmt"
	"strings"

	"github.com/mooring-dev/mooring/internal/vocab"
)

// imagePrefix starts every image name mooring makes, so that a pool shared
// with other users is never confused with ours.
const imagePrefix = "mooring."

// ImageName is the RBD image of a tenant's volume: "mooring.<tenant>.<volume>".
// Both parts are DNS labels, which hold no '.', so the two dots split the
// name unambiguously: distinct (tenant, volume) pairs never share an image
// and ParseImageName inverts it.
func ImageName(tenant, volume string) (string, error) {
	if !vocab.IsLabel(tenant) {
		return "", fmt.Errorf("tenant %q: not a DNS label", tenant)
	}
	if !vocab.IsLabel(volume) {
		return "", fmt.Errorf("volume name %q: not a DNS label", volume)
	}
	return imagePrefix + tenant + "." + volume, nil
}

// ParseImageName returns the tenant and volume of an image mooring named;
// ok is false for any other image.
func ParseImageName(image string) (tenant, volume string, ok bool) {
	rest, found := strings.CutPrefix(image, imagePrefix)
	if !found {
		return "", "", false
	}
	tenant, volume, found = strings.Cut(rest, ".")
	if !found || !vocab.IsLabel(tenant) || !vocab.IsLabel(volume) {
		return "", "", false
	}
	return tenant, volume, true
}
