#!/usr/bin/env bash
# Builds the operator image from the repository's Dockerfile WITHOUT a Docker engine and WITHOUT a
# container registry, then checks it (USER 1001, ENTRYPOINT agentic-operator, `--help` runs, and
# `./operator session-trigger --help` runs from the working directory, as CronJob pods call it).
#
#   testenv/image/build-image.sh            # as root, on Debian bookworm
#
# How: python:3.11-slim cannot be pulled here, so a stand-in base image is made from Debian
# bookworm's own Python 3.11 (debootstrap --variant=minbase + python3-venv + python-is-python3 for
# the `python` command the Dockerfile uses). Its root filesystem is cached as a tarball under
# ${XDG_CACHE_HOME:-$HOME/.cache}/agentic-operator/image-base/ and imported into buildah's store as
# $BASE_IMAGE; the Dockerfile is then built with `buildah bud --build-arg PYTHON_IMAGE=$BASE_IMAGE`.
# The builder stage's pip reaches PyPI; the host's CA bundle is bind-mounted (read-only, build time
# only, not in the image) so TLS works where egress goes through an intercepting proxy.
#
# Environment (all optional):
#   IMAGE              tag to build              (default localhost/agentic-operator:dev)
#   BASE_IMAGE         tag of the stand-in base  (default localhost/agentic-operator-base:bookworm)
#   DEBIAN_MIRROR      debootstrap mirror        (default http://deb.debian.org/debian)
#   BUILD_ISOLATION    buildah RUN isolation     (default chroot; "oci" also works with runc)
#   NO_CACHE=1         rebuild every Dockerfile layer (the base tarball is still reused)
set -euo pipefail

IMAGE=${IMAGE:-localhost/agentic-operator:dev}
BASE_IMAGE=${BASE_IMAGE:-localhost/agentic-operator-base:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BUILD_ISOLATION=${BUILD_ISOLATION:-chroot}
SUITE=bookworm
BASE_PACKAGES=python3-venv,python-is-python3
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/agentic-operator/image-base
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMPORT_CTR=agentic-operator-base-import
# Rlimits for `podman run`: podman's defaults (nofile/nproc 1048576) are refused by this kind of
# machine ("setrlimit RLIMIT_NOFILE: Operation not permitted"), so pass values it accepts.
NOFILE=$(ulimit -Hn); [[ $NOFILE =~ ^[0-9]+$ ]] || NOFILE=1024
RUN_ULIMITS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=4096:4096)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-image.sh: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

[[ $(id -u) -eq 0 ]] || die "run as root (buildah/debootstrap/apt are used as root; rootless is not set up)"
[[ -f $REPO/Dockerfile ]] || die "no Dockerfile at $REPO/Dockerfile"
command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian bookworm"

T0=$(now)

# --- 1. tools -----------------------------------------------------------------------------------
# buildah builds; podman + runc run the image with its real ENTRYPOINT (crun refuses this machine's
# hybrid cgroup layout: "cgroups in hybrid mode not supported, drop all controllers from cgroupv2").
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
if ((${#need[@]})); then
  log "installing with apt: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || die "apt-get install ${need[*]} failed"
fi
T_TOOLS=$(now)

# --- 2. base root filesystem (cached tarball) ---------------------------------------------------
recipe="suite=$SUITE variant=minbase include=$BASE_PACKAGES arch=$(dpkg --print-architecture) slim=1"
key=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
TARBALL=$CACHE_DIR/rootfs-$SUITE-$key.tar.gz
mkdir -p "$CACHE_DIR"
tmp_root=""
cleanup() {
  [[ -n $tmp_root && -d $tmp_root ]] && rm -rf "$tmp_root"
  buildah rm "$IMPORT_CTR" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [[ -s $TARBALL ]]; then
  log "base rootfs: cached $TARBALL"
else
  log "base rootfs: debootstrap $SUITE ($BASE_PACKAGES) from $DEBIAN_MIRROR (about a minute)"
  tmp_root=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$tmp_root/fs" \
      "$DEBIAN_MIRROR" >"$tmp_root/debootstrap.log" 2>&1; then
    tail -n 20 "$tmp_root/debootstrap.log" >&2
    die "debootstrap failed (full log above, last 20 lines)"
  fi
  [[ -x $tmp_root/fs/usr/bin/python ]] || die "base rootfs has no /usr/bin/python (python-is-python3 missing?)"
  # Slim it like a -slim image: no apt lists/caches, docs, man pages or locales.
  rm -rf "$tmp_root"/fs/var/cache/apt/*.bin "$tmp_root"/fs/var/cache/apt/archives/*.deb \
    "$tmp_root"/fs/var/lib/apt/lists/* "$tmp_root"/fs/usr/share/doc/* "$tmp_root"/fs/usr/share/man/* \
    "$tmp_root"/fs/usr/share/locale/* "$tmp_root"/fs/usr/share/info/* "$tmp_root"/fs/var/log/*.log
  tar --numeric-owner --xattrs -C "$tmp_root/fs" -czf "$tmp_root/rootfs.tar.gz" . \
    || die "could not pack the base rootfs"
  mv "$tmp_root/rootfs.tar.gz" "$TARBALL"
  rm -rf "$tmp_root"; tmp_root=""
  log "base rootfs: cached as $TARBALL ($(du -h "$TARBALL" | cut -f1))"
fi
T_ROOTFS=$(now)

# --- 3. base image in buildah's store -----------------------------------------------------------
sum=$(sha256sum "$TARBALL" | cut -d' ' -f1)
have=$(buildah inspect --type image \
  --format '{{index .OCIv1.Config.Labels "io.agentic-operator.base-rootfs-sha256"}}' \
  "$BASE_IMAGE" 2>/dev/null || true)
if [[ $have == "$sum" ]]; then
  log "base image: $BASE_IMAGE already imported"
else
  log "base image: importing $TARBALL as $BASE_IMAGE"
  buildah rm "$IMPORT_CTR" >/dev/null 2>&1 || true
  buildah from --name "$IMPORT_CTR" scratch >/dev/null || die "buildah from scratch failed"
  mnt=$(buildah mount "$IMPORT_CTR") || die "buildah mount failed"
  tar --numeric-owner --xattrs -C "$mnt" -xzf "$TARBALL" || die "could not unpack $TARBALL"
  buildah umount "$IMPORT_CTR" >/dev/null
  buildah config --os linux --arch "$(dpkg --print-architecture)" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd '["python3"]' --label "io.agentic-operator.base-rootfs-sha256=$sum" "$IMPORT_CTR"
  buildah commit --quiet --rm "$IMPORT_CTR" "$BASE_IMAGE" >/dev/null || die "buildah commit failed"
fi
T_BASE=$(now)

# --- 4. build the Dockerfile --------------------------------------------------------------------
bud=(buildah bud --isolation "$BUILD_ISOLATION" --pull=never --layers
  --build-arg "PYTHON_IMAGE=$BASE_IMAGE" -t "$IMAGE" -f "$REPO/Dockerfile")
[[ ${NO_CACHE:-0} == 1 ]] && bud+=(--no-cache)
[[ $BUILD_ISOLATION == oci ]] && bud+=(--runtime runc)
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  bud+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi
log "building $IMAGE: ${bud[*]} $REPO"
BUILD_LOG=$(mktemp /tmp/agentic-operator-build.XXXXXX.log)
if ! "${bud[@]}" "$REPO" >"$BUILD_LOG" 2>&1; then
  tail -n 40 "$BUILD_LOG" >&2
  die "buildah bud failed (last 40 lines above; full log: $BUILD_LOG)"
fi
rm -f "$BUILD_LOG"
T_BUILD=$(now)

# --- 5. verify ----------------------------------------------------------------------------------
user=$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$IMAGE")
entry=$(buildah inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$IMAGE")
[[ $user == 1001 ]] || die "image USER is '$user', expected 1001"
[[ $entry == '[agentic-operator]' ]] || die "image ENTRYPOINT is $entry, expected [agentic-operator]"

# Run the image with its own ENTRYPOINT and USER: `podman run IMAGE --help`.
set +e
out=$(timeout 120 podman run --rm --pull=never --network=none --runtime runc "${RUN_ULIMITS[@]}" \
  "$IMAGE" --help 2>&1)
rc=$?
set -e
[[ $rc -eq 0 ]] || { printf '%s\n' "$out" >&2; die "podman run $IMAGE --help exited $rc"; }
grep -q '^usage: agentic-operator' <<<"$out" || { printf '%s\n' "$out" >&2; die "--help printed no usage line"; }
uid=$(podman run --rm --pull=never --network=none --runtime runc "${RUN_ULIMITS[@]}" \
  --entrypoint id "$IMAGE" -u)
[[ $uid == 1001 ]] || die "process in the image runs as uid $uid, expected 1001"
# What the platform's scheduled-session CronJob pods run: ./operator from the working directory.
set +e
out=$(podman run --rm --pull=never --network=none --runtime runc "${RUN_ULIMITS[@]}" \
  --entrypoint ./operator "$IMAGE" session-trigger --help 2>&1)
rc=$?
set -e
[[ $rc -eq 0 ]] || { printf '%s\n' "$out" >&2; die "./operator session-trigger --help exited $rc"; }
grep -q '^usage: agentic-operator session-trigger' <<<"$out" \
  || { printf '%s\n' "$out" >&2; die "./operator session-trigger --help printed no usage line"; }
T_VERIFY=$(now)

size=$(buildah images --format '{{.Size}}' "$IMAGE" | head -n1)
log "OK: $IMAGE ($size): USER 1001, ENTRYPOINT [\"agentic-operator\"], \`--help\` and \`./operator session-trigger --help\` exit 0 with usage"
log "times (s): tools $((T_TOOLS - T0)), base rootfs $((T_ROOTFS - T_TOOLS)), base import $((T_BASE - T_ROOTFS)), build $((T_BUILD - T_BASE)), verify $((T_VERIFY - T_BUILD)), total $((T_VERIFY - T0))"
log "run it: podman run --rm --runtime runc ${RUN_ULIMITS[*]} $IMAGE --help"
