package annotations

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	goyaml "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"

	"github.com/mooring-dev/mooring/internal/vocab"
)

// Effective returns the annotation that carries the request for the named
// container: the container key, then the pod key, then the plain key. Only
// exact keys count; lookalikes such as "volumes.mooring.devx" are ignored.
func Effective(ann map[string]string, containerName string) (key, value string, ok bool) {
	keys := []string{KeyPod, Key}
	if containerName != "" {
		keys = append([]string{KeyContainerPrefix + containerName}, keys...)
	}
	for _, k := range keys {
		if v, found := ann[k]; found {
			return k, v, true
		}
	}
	return "", "", false
}

// FromAnnotations parses the effective request of a container. No request
// is (nil, nil); an invalid one is an error that names the key.
func FromAnnotations(ann map[string]string, containerName string) ([]Volume, error) {
	key, value, ok := Effective(ann, containerName)
	if !ok {
		return nil, nil
	}
	vols, err := Parse(value)
	if err != nil {
		return nil, fmt.Errorf("annotation %q: %w", key, err)
	}
	return vols, nil
}

// fields are the keys a volume may have, exactly as written.
var fields = []string{"name", "target", "pool", "size", "fs", "readOnly", "mode", "from"}

// Parse reads and validates a request: a YAML (or JSON) list of volumes.
// Unknown or duplicate fields, duplicate volumes and every invalid value
// are errors naming the volume and the field.
func Parse(value string) ([]Volume, error) {
	if len(value) > MaxValueBytes {
		return nil, fmt.Errorf("value is %d bytes, more than the limit of %d", len(value), MaxValueBytes)
	}
	if i := strings.IndexFunc(value, func(r rune) bool { return r != '\n' && r != '\t' && invisible(r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(value[i:])
		return nil, fmt.Errorf("value has a control or invisible character %U at byte %d", r, i)
	}
	if err := oneDocument(value); err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSONStrict([]byte(value))
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %s", oneLine(err))
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, errors.New("want a list of volumes such as [{name: data, target: /data}]")
	}
	switch {
	case len(raw) == 0:
		return nil, errors.New("no volumes in the list")
	case len(raw) > MaxVolumes:
		return nil, fmt.Errorf("%d volumes, more than the limit of %d", len(raw), MaxVolumes)
	}
	vols := make([]Volume, len(raw))
	for i, m := range raw {
		if m == nil {
			return nil, fmt.Errorf("volume %d: want a map with name and target", i+1)
		}
		if err := decodeVolume(m, &vols[i]); err != nil {
			return nil, fmt.Errorf("volume %d%s: %w", i+1, quotedName(vols[i].Name), err)
		}
	}
	if err := checkUnique(vols); err != nil {
		return nil, err
	}
	return vols, nil
}

func decodeVolume(m map[string]json.RawMessage, v *Volume) error {
	targets := map[string]any{
		"name": &v.Name, "target": &v.Target, "pool": &v.Pool,
		"size": &v.Size, "fs": &v.FS, "readOnly": &v.ReadOnly, "mode": &v.Mode, "from": &v.From,
	}
	// name first, so later errors can say which volume they are about.
	for _, k := range fields {
		rawValue, ok := m[k]
		if !ok {
			continue
		}
		if bytes.Equal(rawValue, []byte("null")) {
			return fmt.Errorf("%s: must not be empty", k)
		}
		if err := json.Unmarshal(rawValue, targets[k]); err != nil {
			return fmt.Errorf("%s: %s", k, typeError(k, err))
		}
		if k == "size" && v.Size == 0 {
			return errors.New("size: must be more than zero")
		}
	}
	for k := range m {
		if !slices.Contains(fields, k) {
			return fmt.Errorf("unknown field %q (want %s)", k, strings.Join(fields, ", "))
		}
	}
	return v.validate()
}

func typeError(field string, err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "must be a " + te.Type.String()
	}
	if field == "size" {
		return strings.TrimPrefix(err.Error(), "size: ")
	}
	return oneLine(err)
}

func quotedName(n string) string {
	if n == "" || !vocab.IsLabel(n) {
		return ""
	}
	return fmt.Sprintf(" (%q)", n)
}

// invisible reports characters that do not show as themselves: controls
// (C0, DEL, C1), line and paragraph separators, and format characters
// (Unicode Cf: bidi overrides and isolates such as U+202E, zero-width
// spaces, BOM) that make a path read differently from what it is.
func invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == 0x2028 || r == 0x2029
}

// oneDocument refuses a value with a second YAML document: the parser
// reads only the first, and whatever follows must not pass unseen. It
// uses the decoder the parser is built on, so both agree on where a
// document ends.
func oneDocument(value string) error {
	dec := goyaml.NewDecoder(strings.NewReader(value))
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil // no document or not YAML: the strict parse says which
	}
	if err := dec.Decode(&doc); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document (---): want one list")
	}
	return nil
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
