package annotations

import (
	"encoding/json"
	"strings"
)

// Format writes volumes as a one-line YAML flow list that Parse reads back
// to the same value, e.g. [{name: "data", target: "/data", size: "1Gi"}].
// Strings are JSON-quoted (valid YAML) so no value is ever read back as a
// number, a boolean or null.
func Format(vols []Volume) (string, error) {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range vols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('{')
		first := true
		field := func(k string, val any) error {
			js, err := json.Marshal(val)
			if err != nil {
				return err
			}
			if !first {
				b.WriteString(", ")
			}
			first = false
			b.WriteString(k + ": ")
			b.Write(js)
			return nil
		}
		for _, f := range []struct {
			key  string
			val  any
			omit bool
		}{
			{"name", v.Name, false},
			{"target", v.Target, false},
			{"pool", v.Pool, v.Pool == ""},
			{"size", v.Size, v.Size == 0},
			{"fs", v.FS, v.FS == ""},
			{"readOnly", v.ReadOnly, !v.ReadOnly},
			{"mode", v.Mode, v.Mode == ""},
			{"from", v.From, v.From == ""},
		} {
			if f.omit {
				continue
			}
			if err := field(f.key, f.val); err != nil {
				return "", err
			}
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.String(), nil
}
