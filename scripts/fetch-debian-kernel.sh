#!/usr/bin/env bash
# Fetches Debian's stock cloud kernel from Debian's package registry (never
# from this repository) and extracts both the bzImage and the uncompressed
# vmlinux (the ELF with the PVH entry note) into DIR, once: later runs find
# them there. Usage: scripts/fetch-debian-kernel.sh DIR
set -euo pipefail
dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
cd "$dir"
# Tests in processes of their own (cargo nextest) fetch at the same time:
# one fetches, the others wait for it (bounded: a stuck download fails them).
exec 9>.lock
flock -w 200 9 || { echo "fetch-debian-kernel: $dir is locked by another fetch" >&2; exit 1; }
if [ -s vmlinux ] && [ -s vmlinuz ]; then
  exit 0
fi
# The package linux-image-cloud-amd64 depends on, e.g.
# linux-image-6.1.0-56-cloud-amd64.
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends:/ {print $2; exit}')
if [ -z "$pkg" ]; then
  apt-get update -qq
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends:/ {print $2; exit}')
fi
rm -rf pkg && mkdir pkg
(cd pkg && apt-get download "$pkg" >/dev/null 2>&1)
dpkg -x pkg/*.deb pkg/root
cp pkg/root/boot/vmlinuz-* vmlinuz.tmp
# The bzImage's payload starts at (setup_sects + 1) * 512 + payload_offset
# (header fields at 0x1f1 and 0x248, length at 0x24c) and is LZ4
# legacy-framed. lz4 exits 1 on the trailing size field, so the ELF magic
# is what tells success.
python3 - vmlinuz.tmp payload.lz4 <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
setup_sects = d[0x1f1] or 4
offset, length = struct.unpack_from('<II', d, 0x248)
start = (setup_sects + 1) * 512 + offset
open(sys.argv[2], 'wb').write(d[start:start + length])
PY
lz4 -dc payload.lz4 > vmlinux.tmp 2>/dev/null || true
if [ "$(head -c 4 vmlinux.tmp | od -An -c | tr -d ' ')" != '177ELF' ]; then
  echo "fetch-debian-kernel: the extracted vmlinux is not an ELF file" >&2
  exit 1
fi
echo "$pkg" > package
mv vmlinux.tmp vmlinux
mv vmlinuz.tmp vmlinuz
rm -rf pkg payload.lz4
