#!/usr/bin/env bash
# Runs syscall supervision on a real arm64 kernel: boots Debian's arm64 kernel
# under qemu-system-aarch64 (TCG) with agent/supervise/testdata/vmcheck as the
# VM's /init, which supervises itself under ptrace and user notification (a
# denied exec and connect fail with EPERM, an allowed exec runs). qemu-user
# cannot do this: it implements neither ptrace nor seccomp filters.
# Usage (root, for mknod): scripts/arm64-vm-check.sh VMLINUZ
#   VMLINUZ: boot/vmlinuz-*-arm64 of Debian's linux-image-*-arm64 package
#   (apt-get download linux-image-6.1.0-NN-arm64:arm64; dpkg-deb -x).
set -euo pipefail
kernel=$(realpath "${1:?usage: $0 VMLINUZ}")
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/proc" "$work/root/dev"
mknod -m 600 "$work/root/dev/console" c 5 1
GOARCH=arm64 CGO_ENABLED=0 go build -o "$work/root/init" ./agent/supervise/testdata/vmcheck
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip) >"$work/initrd.gz"
timeout "${TIMEOUT:-900}" qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 1 -m 512 -nographic -no-reboot -nic none \
	-kernel "$kernel" -initrd "$work/initrd.gz" -append "console=ttyAMA0 panic=-1 quiet" | tee "$work/out"
grep -q "VMCHECK PASS" "$work/out"
