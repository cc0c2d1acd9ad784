#!/bin/sh
# Runs the image's tidegate as the image's user: with `buildah run` (chroot
# isolation; `podman run` fails on machines whose sandbox refuses crun's
# setrlimit), and, when root may mount, with `chroot --userspec` into the
# image's root filesystem mounted read-only, as the Deployment runs it
# (readOnlyRootFilesystem).
#
#   deploy/image-check.sh IMAGE        (BUILDAH may name the buildah command)
set -eu
image=${1:?usage: deploy/image-check.sh IMAGE}
buildah=${BUILDAH:-buildah --storage-driver vfs}
ctr=$($buildah from "$image")
ro=
cleanup() {
    if [ -n "$ro" ]; then umount "$ro" 2>/dev/null || true; rmdir "$ro"; fi
    $buildah umount "$ctr" >/dev/null 2>&1 || true
    $buildah rm "$ctr" >/dev/null
}
trap cleanup EXIT
user=$($buildah inspect --format '{{.OCIv1.Config.User}}' "$image")
case "$user" in 0 | 0:* | root | root:* | "") echo "the image runs as root ($user)" >&2; exit 1 ;; esac
echo "running $image (buildah run, chroot isolation, as the image's user $user):"
$buildah run --isolation chroot --user "$user" "$ctr" -- /usr/local/bin/tidegate --version
$buildah run --isolation chroot --user "$user" "$ctr" -- /usr/local/bin/tidegate controller --help >/dev/null
if [ "$(id -u)" = 0 ]; then
    root=$($buildah mount "$ctr")
    ro=$(mktemp -d)
    if mount --bind "$root" "$ro" 2>/dev/null && mount -o remount,ro,bind "$ro" 2>/dev/null; then
        if touch "$ro/probe" 2>/dev/null; then echo "the read-only mount is writable" >&2; exit 1; fi
        chroot --userspec="$user" "$ro" /usr/local/bin/tidegate --version >/dev/null
        echo "and from its root filesystem mounted read-only (chroot --userspec=$user)"
    else
        rmdir "$ro"; ro=
        echo "(no read-only check: this machine does not allow bind mounts)"
    fi
fi
echo "the image's tidegate runs as $user"
