package vocab

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Size is a byte count written with binary (Ki, Mi, Gi, Ti) or decimal
// (k, M, G, T) units, or a plain number of bytes.
type Size int64

// units by suffix; binary first so String prefers them.
var units = []struct {
	suffix string
	factor int64
}{
	{"Pi", 1 << 50}, {"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10},
	{"P", 1e15}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"k", 1e3}, {"K", 1e3},
}

// ParseSize reads a byte count: a plain number, or a number with a binary
// (Ki, Mi, Gi, Ti, Pi) or decimal (k or K, M, G, T, P) unit. No fractions,
// no signs, no spaces.
func ParseSize(s string) (Size, error) {
	digits := 0
	for digits < len(s) && IsDigit(s[digits]) {
		digits++
	}
	factor := int64(1)
	if suffix := s[digits:]; suffix != "" {
		factor = 0
		for _, u := range units {
			if u.suffix == suffix {
				factor = u.factor
			}
		}
	}
	if digits == 0 || digits > 20 || factor == 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (Ki, Mi, Gi, Ti, Pi, k, M, G, T, P)", s)
	}
	n, err := strconv.ParseInt(s[:digits], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	if n > math.MaxInt64/factor {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return Size(n * factor), nil
}

// String writes the size with the largest unit that divides it exactly,
// binary before decimal: 1073741824 is "1Gi", 2000000 is "2M".
func (s Size) String() string {
	if s > 0 {
		for _, u := range units {
			if u.suffix != "K" && int64(s)%u.factor == 0 {
				return strconv.FormatInt(int64(s)/u.factor, 10) + u.suffix
			}
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalJSON writes the size as a string with its unit.
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON accepts a string with a unit or a plain integer.
func (s *Size) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		var n json.Number
		if json.Unmarshal(b, &n) != nil {
			return fmt.Errorf("size: want a string such as \"10Gi\" or a number of bytes")
		}
		str = n.String()
	}
	v, err := ParseSize(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}
