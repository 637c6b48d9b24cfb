package procstat

import (
	"os"
	"testing"
)

func TestParse(t *testing.T) {
	line := "42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10\n"
	state, start, err := parse(42, []byte(line))
	if err != nil || state != 'S' || start != 123456 {
		t.Fatalf("parse = %c %d %v", state, start, err)
	}
	for _, bad := range []string{"", "42 (x S 1", "42 (x) S 1 2 3", "42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 nan"} {
		if _, _, err := parse(42, []byte(bad)); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

func TestReadSelf(t *testing.T) {
	state, start, err := Read(os.Getpid())
	if err != nil || state != 'R' && state != 'S' || start == 0 {
		t.Fatalf("Read(self) = %c %d %v", state, start, err)
	}
}
