package vocab

// Names are checked by hand-written matchers, not regular expressions:
// every hook and shim process checks names, and compiling a package's
// patterns at start-up cost more than the checks themselves
// (docs/BENCHMARKS.md, process start).

// Name is a rule for a name: its length bounds and the bytes allowed
// first, in the middle and last (Last nil: as Rest).
type Name struct {
	Min, Max          int
	First, Rest, Last func(byte) bool
}

// Match reports whether s follows the rule.
func (n Name) Match(s string) bool {
	if len(s) < n.Min || len(s) > n.Max {
		return false
	}
	for i := 0; i < len(s); i++ {
		ok := n.Rest
		switch {
		case i == 0:
			ok = n.First
		case i == len(s)-1 && n.Last != nil:
			ok = n.Last
		}
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// Byte classes names are made of.
func IsLower(b byte) bool       { return 'a' <= b && b <= 'z' }
func IsDigit(b byte) bool       { return '0' <= b && b <= '9' }
func IsLowerAlnum(b byte) bool  { return IsLower(b) || IsDigit(b) }
func IsAlnum(b byte) bool       { return IsLowerAlnum(b) || 'A' <= b && b <= 'Z' }
func IsLowerHex(b byte) bool    { return IsDigit(b) || 'a' <= b && b <= 'f' }
func isLabelByte(b byte) bool   { return IsLowerAlnum(b) || b == '-' }
func isHostByte(b byte) bool    { return IsAlnum(b) || b == '.' || b == '-' }
func isProgramByte(b byte) bool { return IsAlnum(b) || b == '.' || b == '_' || b == '+' || b == '-' }

// label is a DNS label (RFC 1123): what Kubernetes namespace names follow,
// and so tenants, pools and volume names. It has no '.', which lets
// backends join labels with dots reversibly.
var label = Name{Min: 1, Max: 63, First: IsLowerAlnum, Rest: isLabelByte, Last: IsLowerAlnum}

// IsLabel reports whether s is a DNS label: 1-63 characters a-z, 0-9 and
// '-', starting and ending with a letter or digit.
func IsLabel(s string) bool { return label.Match(s) }

// hostName is a node name: a host name's first label, or a dotted name,
// without ':' (it is written into lease cookies).
var hostName = Name{Min: 1, Max: 63, First: IsAlnum, Rest: isHostByte}

// IsHostName reports whether s can name a node: 1-63 letters, digits, '.'
// and '-', starting with a letter or digit.
func IsHostName(s string) bool { return hostName.Match(s) }

// program is a program name or a similar token (a Ceph client id, a
// RADOS pool).
var program = Name{Min: 1, Max: 255, First: isProgramByte, Rest: isProgramByte}

// IsProgramName reports whether s is made of letters, digits, '.', '_',
// '+' and '-' only.
func IsProgramName(s string) bool { return program.Match(s) }
