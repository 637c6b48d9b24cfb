#!/usr/bin/env bash
# make demo: a runc container asks for a volume in its annotations, writes,
# is removed; a new container reads the data back. Everything lives in a
# scratch directory: the host's /var/lib/mooring is never touched.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mooring=$root/bin/mooring
runc=${RUNC:-$root/.tools/bin/runc}
[ -x "$mooring" ] || { echo "demo: $mooring missing (make build)" >&2; exit 1; }
[ -x "$runc" ] || { echo "demo: $runc missing (make tools)" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "demo: /bin/busybox missing (make prereqs)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "demo: python3 missing (apt-get install python3-minimal): it edits the bundles' config.json" >&2; exit 1; }

scratch=$(mktemp -d /tmp/mooring-demo.XXXXXX)
config=$scratch/config.toml
runc_root=$scratch/runc
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

cleanup() {
	set +e
	for id in demo-writer demo-reader; do "$runc" --root "$runc_root" delete -f "$id" >/dev/null 2>&1; done
	MOORING_CONFIG=$config "$mooring" gc >/dev/null 2>&1
	grep -o " $scratch[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$scratch"
}
trap cleanup EXIT

step "scratch dir $scratch: config with a loop pool there"
cat > "$config" <<TOML
state_dir = "$scratch/state"
run_dir = "$scratch/run"
log_file = "$scratch/mooring.log"
[pools.default]
driver = "loop"
directory = "$scratch/pool"
default_size = "256Mi"
max_size = "1Gi"
default_fs = "ext4"
tenants = ["*"]
TOML
mkdir -p "$scratch/pool"
cat "$config"

step "busybox rootfs from Debian's busybox-static"
rootfs=$scratch/rootfs
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"; done

# bundle NAME SHELL-COMMAND: a runc bundle whose annotation asks for the
# volume "demo" at /data, with mooring's createRuntime and poststop hooks.
bundle() {
	local dir=$scratch/$1
	mkdir -p "$dir"
	(cd "$dir" && "$runc" spec)
	python3 - "$dir/config.json" "$rootfs" "$mooring" "$config" "$2" <<'PY'
import json, sys
path, rootfs, mooring, config, cmd = sys.argv[1:]
spec = json.load(open(path))
spec["root"] = {"path": rootfs, "readonly": False}
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sh", "-c", cmd]
spec["annotations"] = {"volumes.mooring.dev": "[{name: demo, target: /data, size: 256Mi}]"}
hook = lambda stage: [{"path": mooring, "args": ["mooring", "hook", stage], "env": ["MOORING_CONFIG=" + config]}]
spec["hooks"] = {"createRuntime": hook("createRuntime"), "poststop": hook("poststop")}
json.dump(spec, open(path, "w"), indent=2)
PY
	echo "$dir"
}

step "container 1 (demo-writer) asks for: volumes.mooring.dev=[{name: demo, target: /data, size: 256Mi}]"
b1=$(bundle writer 'echo "written by demo-writer at $(date)" > /data/hello && sync && cat /data/hello && df -h /data | tail -1')
"$runc" --root "$runc_root" run --bundle "$b1" demo-writer

step "container 1 is gone; mooring released the volume (no attachments):"
MOORING_CONFIG=$config "$mooring" attachments ls

step "container 2 (demo-reader) asks for the same volume and reads it"
b2=$(bundle reader 'cat /data/hello')
out=$("$runc" --root "$runc_root" run --bundle "$b2" demo-reader)
echo "$out"
case $out in "written by demo-writer"*) ;; *) echo "demo: FAILED, data not found" >&2; exit 1 ;; esac

step "mooring volume ls"
MOORING_CONFIG=$config "$mooring" volume ls
step "mooring attachments ls"
MOORING_CONFIG=$config "$mooring" attachments ls

step "nothing left behind"
if losetup --list --noheadings -O BACK-FILE | grep -q "$scratch"; then echo "demo: a loop device is still attached" >&2; exit 1; fi
if grep -q " $scratch" /proc/self/mountinfo; then echo "demo: a mount is still there" >&2; exit 1; fi
echo "no loop device, no mount, no container left. The volume's data stays in $scratch/pool until the scratch dir is removed."
step "demo OK"
