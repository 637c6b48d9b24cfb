package rbd

import (
	"fmt"
	"regexp"
	"strings"
)

// imagePrefix starts every image name mooring makes, so that a pool shared
// with other users is never confused with ours.
const imagePrefix = "mooring."

// label is the rule tenants and volume names already follow (a DNS label):
// no '.', which is what makes the image name reversible.
var label = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ImageName is the RBD image of a tenant's volume: "mooring.<tenant>.<volume>".
// Both parts are DNS labels, which hold no '.', so the two dots split the
// name unambiguously: distinct (tenant, volume) pairs never share an image
// and ParseImageName inverts it.
func ImageName(tenant, volume string) (string, error) {
	if !label.MatchString(tenant) {
		return "", fmt.Errorf("tenant %q: not a DNS label", tenant)
	}
	if !label.MatchString(volume) {
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
	if !found || !label.MatchString(tenant) || !label.MatchString(volume) {
		return "", "", false
	}
	return tenant, volume, true
}
