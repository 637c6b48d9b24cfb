// Package annotations parses a container's volume request from its
// annotations.
//
// It owns the annotation keys, their precedence and the strict grammar of the
// value (a YAML or JSON list of volumes). It is pure: maps and strings in,
// typed values or errors out. Annotations are tenant input, so every error
// names the key and the field and nothing is accepted loosely.
//
// It does not decide what a tenant may use (see package config) and never
// names host paths or devices.
package annotations
