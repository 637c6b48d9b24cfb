package oci

import (
	"strings"
	"testing"
)

func TestDecodeState(t *testing.T) {
	good := `{"ociVersion":"1.0.2","id":"c1","status":"created","pid":42,"bundle":"/run/b","annotations":{"a":"b"},"runtimeExtra":1}`
	s, err := DecodeState([]byte(good))
	if err != nil || s.ID != "c1" || s.Pid != 42 || s.Annotations["a"] != "b" {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{
		``, `[]`, `{"id":"c1","bundle":"/b"} {}`, `{"bundle":"/b"}`,
		`{"id":"c","bundle":"b"}`, `{"id":"c","bundle":"/b/../etc"}`, `{"id":"c","bundle":"/b","pid":-1}`,
		`{"id":"c","bundle":"/b","pid":"1"}`,
	} {
		if _, err := DecodeState([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzState(f *testing.F) {
	f.Add(`{"ociVersion":"1.0.2","id":"c1","status":"created","pid":42,"bundle":"/run/b"}`)
	f.Add(`{"id":"x","bundle":"/","annotations":{"volumes.mooring.dev":"[]"}}`)
	f.Fuzz(func(t *testing.T, s string) {
		st, err := DecodeState([]byte(s))
		if err != nil {
			return
		}
		if st.ID == "" || !strings.HasPrefix(st.Bundle, "/") || st.Pid < 0 {
			t.Fatalf("invalid state accepted: %+v", st)
		}
	})
}
