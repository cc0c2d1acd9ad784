#!/bin/sh
# Lays out the image's root filesystem in target/image-rootfs from a
# tidegate binary built on the host (the Containerfile's stage
# `image-from-host` copies it): the binary, CA certificates, a passwd entry
# for user 65532 and the directories the Deployment mounts.
#
#   deploy/image-rootfs.sh BIN            BIN must be statically linked (make image)
#   deploy/image-rootfs.sh --libs BIN     a dynamically linked BIN, with exactly the
#                                         shared libraries `ldd BIN` names (make image-dynamic)
#
# The binary is copied without its debug sections (objcopy --strip-debug).
set -eu
libs=false
if [ "${1:-}" = "--libs" ]; then libs=true; shift; fi
bin=${1:?usage: deploy/image-rootfs.sh [--libs] BIN}
root=target/image-rootfs

# A static-pie binary is ELF type DYN and `ldd` answers 0 for it ("statically
# linked"): it is dynamically linked only if it names a shared library.
if ! $libs && readelf -d "$bin" | grep -q '(NEEDED)'; then
    echo "$bin is dynamically linked (use --libs to copy its shared libraries):" >&2
    readelf -d "$bin" | grep '(NEEDED)' >&2
    exit 1
fi
rm -rf "$root"
install -D -m 0755 "$bin" "$root/usr/local/bin/tidegate"
objcopy --strip-debug "$root/usr/local/bin/tidegate"
if $libs; then
    # Every library the dynamic loader resolves, at the path it resolves
    # it to, and the loader itself (`/lib64/ld-linux-x86-64.so.2 (0x...)`).
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
        while read -r lib; do
            install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
        done
    if ldd "$bin" | grep -q 'not found'; then
        echo "$bin needs a library ldd cannot find:" >&2
        ldd "$bin" >&2
        exit 1
    fi
fi
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
echo 'tidegate:x:65532:65532:tidegate:/tmp:/sbin/nologin' >"$root/etc/passwd"
echo 'tidegate:x:65532:' >"$root/etc/group"
mkdir -p "$root/tmp" "$root/var/lib/tidegate" "$root/var/cache/tidegate"
chmod 1777 "$root/tmp"
