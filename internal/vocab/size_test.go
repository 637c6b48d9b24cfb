package vocab

import "testing"

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		out  string
	}{
		{"1", 1, "1"}, {"1024", 1024, "1Ki"}, {"1Ki", 1 << 10, "1Ki"}, {"64Mi", 64 << 20, "64Mi"},
		{"10Gi", 10 << 30, "10Gi"}, {"2Ti", 2 << 40, "2Ti"}, {"1Pi", 1 << 50, "1Pi"},
		{"500M", 500e6, "500M"}, {"1k", 1000, "1k"}, {"1K", 1000, "1k"}, {"3G", 3e9, "3G"}, {"1000", 1000, "1k"},
		{"1536Mi", 1536 << 20, "1536Mi"},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want || got.String() != tc.out {
			t.Errorf("%s: got %d %q %v", tc.in, got, got.String(), err)
		}
	}
	for _, bad := range []string{"", "-1", "1.5Gi", "1 Gi", "1gi", "Gi", "99999999999999999999", "16Pi0", "8192Pi"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
