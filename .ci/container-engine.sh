#!/usr/bin/env bash
# Builds the fake-registry image and runs the testcontainers test against it, on a dockerd
# this script starts and stops itself: Debian's 20.10 (provisioned by the matrix), with
# `--bridge=none --iptables=false --ip6tables=false` — no bridge, no firewall rule, nothing
# on the machine's interfaces — its own data root, exec root, socket and empty config. The
# container runs on the host network (loopback addresses only, like the fake itself).
#
# testcontainers-rs speaks Docker API 1.49 and never negotiates; this dockerd answers up to
# 1.41. The test reaches it through an API-version adapter (fake-registry/tests/support/
# api_version.rs) when REGCOMPAT_DOCKERD_API_1_41 names its socket.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${REGCOMPAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/regcompat}"
dockerd="$(ls -d "$cache"/clients/docker/*/bin/dockerd 2>/dev/null | head -n 1)"
if [ -z "$dockerd" ]; then
  echo "no dockerd under $cache/clients/docker: cargo xtask install-clients docker" >&2
  exit 1
fi
docker_cli="$(dirname "$dockerd")/docker"

engine_dir="$(mktemp -d /tmp/regcompat-engine.XXXXXX)"
exec_root="$(mktemp -d /tmp/rce.XXXXXX)"
sock="$engine_dir/docker.sock"
echo '{}' > "$engine_dir/daemon.json"
"$dockerd" --config-file="$engine_dir/daemon.json" --data-root="$engine_dir/data" \
  --exec-root="$exec_root" --pidfile="$engine_dir/dockerd.pid" --host="unix://$sock" \
  --bridge=none --iptables=false --ip6tables=false --storage-driver=vfs \
  > "$engine_dir/dockerd.log" 2>&1 &
engine_pid=$!
stop_engine() {
  kill "$engine_pid" 2>/dev/null || true
  wait "$engine_pid" 2>/dev/null || true
  # dockerd leaves its default network namespace mounted under the exec root.
  grep -o " $exec_root/[^ ]*" /proc/mounts | sort -r | xargs -r umount 2>/dev/null || true
  rm -rf "$engine_dir" "$exec_root"
}
trap stop_engine EXIT
for _ in $(seq 100); do
  "$docker_cli" --host "unix://$sock" version >/dev/null 2>&1 && break
  sleep 0.2
done
if ! "$docker_cli" --host "unix://$sock" version >/dev/null 2>&1; then
  echo "dockerd did not start:" >&2
  tail -n 20 "$engine_dir/dockerd.log" >&2
  exit 1
fi

cargo xtask image --engine "$docker_cli" --engine-arg="--host=unix://$sock"
REGCOMPAT_DOCKERD_API_1_41="$sock" \
  cargo test -p fake-registry --features testcontainers --test container -- --nocapture
