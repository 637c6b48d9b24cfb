package integration

import (
	"testing"

	"github.com/mooring-dev/mooring/annotations"
)

// CRI-O 1.34 serving mooring through its hooks_dir (deploy/hooks.d): the
// pod's annotations reach every container's OCI spec, where the hooks
// match them. The NRI path runs in nri_test.go.

func TestCRIOHooksDataOutlivesPods(t *testing.T) { dataOutlivesPods(newCRIEnv(t, crioHooks)) }

func TestCRIOHooksPrecedenceAndSharing(t *testing.T) { precedenceAndSharing(newCRIEnv(t, crioHooks)) }

// TestCRIOHooksTenantPerNamespace needs the hook to take the tenant from
// the namespace CRI-O sets (io.kubernetes.pod.namespace).
func TestCRIOHooksTenantPerNamespace(t *testing.T) { tenantPerNamespace(newCRIEnv(t, crioHooks)) }

func TestCRIOHooksRefusalFailsContainer(t *testing.T) { refusalFailsCreate(newCRIEnv(t, crioHooks)) }

// TestCRIONRIFailsOpen records a limit of CRI-O 1.34: its NRI has no
// required plugins, so with mooring-nri not running a container starts
// without its volume (docs/kubernetes.md says to use the hooks.d path, or
// to watch the plugin, on CRI-O).
func TestCRIONRIFailsOpen(t *testing.T) {
	e := newCRIEnv(t, crioNRI)
	e.stopPlugin()
	p := e.pod("ns", "open", map[string]string{annotations.KeyPod: `[{name: open, target: /data}]`})
	if code := e.run(p, "c", "! grep -q ' /data ' /proc/mounts"); code != 0 {
		t.Fatalf("a volume appeared without mooring-nri running?\n%s", e.logs())
	}
	if n := e.scratch.Attachments(); n != 0 {
		t.Fatalf("%d attachments without the plugin", n)
	}
	e.removePod(p)
}
