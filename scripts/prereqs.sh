#!/usr/bin/env bash
# Installs the Debian packages mooring's build, tests and demo need.
# Idempotent: does nothing (and no apt-get update) when all are present.
set -euo pipefail

packages=(
	busybox-static   # rootfs for test and demo containers
	e2fsprogs xfsprogs btrfs-progs util-linux   # mkfs, fsck, blkid, losetup
	libseccomp-dev pkg-config gcc libc6-dev     # building runc, CRI-O and its pinns (static)
	podman crun conmon uidmap                   # podman, crun and CRI-O integration tests
	docker.io iptables                          # docker integration tests (shim)
	fio                                         # I/O benchmarks
	ceph-mon ceph-osd ceph-common               # test Ceph cluster, rbd and ceph CLIs
	rbd-fuse qemu-utils qemu-system-common      # rbd pools' FUSE data path
	qemu-block-extra                            # qemu's rbd block driver
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "prereqs: all Debian packages present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "prereqs: missing ${missing[*]}; run as root to install them" >&2
	exit 1
fi
echo "prereqs: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
