#!/usr/bin/env bash
# Installs what `npm run bench` drives: everything the tests need (scripts/install-deps.sh), then
# the peers the proxy is compared with: haproxy, socat and ProFTPD's mod_proxy. Idempotent,
# non-interactive, root on Debian 12; a rerun on a ready machine touches no network.
#
#   bash scripts/bench-deps.sh               # install-deps.sh, then the peers
#   bash scripts/bench-deps.sh --peers-only  # the peers alone (scripts/test.sh, after install-deps.sh)
#
# The peers are unpacked with `dpkg-deb -x` into .cache/debs/<package>/, as install-deps.sh does
# with the FTP servers, and only their runtime libraries are installed with apt-get:
# - proftpd-mod-proxy must sit beside the unpacked proftpd-core (it is a module of that binary,
#   and apt would pull in proftpd-basic, which conflicts with the other FTP servers);
# - haproxy and socat unpacked cannot be started by apt as services (Debian's haproxy package
#   enables and starts one), and bench/lib.ts's optionalBinary() finds all three in one layout.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$repo/.cache/debs"
export DEBIAN_FRONTEND=noninteractive

die() { echo "bench-deps: $*" >&2; exit 1; }

peers_only=false
case "${1:-}" in
  '') ;;
  --peers-only) peers_only=true ;;
  *) die "unknown argument $1 (only --peers-only)" ;;
esac

[ "$(id -u)" = 0 ] || die "run as root (apt-get and dpkg need it)"

if [ "$peers_only" = false ]; then bash "$repo/scripts/install-deps.sh"; fi

# The modules dir of the unpacked proftpd-core (and mod_tls.so from proftpd-mod-crypto, which
# mod_proxy needs loaded first) come from install-deps.sh.
[ -f "$cache/proftpd/.unpacked" ] || die "$cache/proftpd is not unpacked: run bash scripts/install-deps.sh first"

peers=(haproxy socat proftpd-mod-proxy)

# installed, lib_deps, apt_update_once, unpack_debs, apt_install_quiet.
. "$(dirname "${BASH_SOURCE[0]}")/deb-lib.sh"

for pkg in "${peers[@]}"; do
  if [ ! -f "$cache/$pkg/.unpacked" ]; then apt_update_once; unpack_debs "$cache/$pkg" "$pkg"; fi
done

mapfile -t libs < <(for pkg in "${peers[@]}"; do cat "$cache/$pkg/.libdeps"; done | sort -u)
to_install=()
for p in "${libs[@]}"; do installed "$p" || to_install+=("$p"); done
if [ ${#to_install[@]} -gt 0 ]; then apt_install_quiet "${to_install[@]}"; fi

# Verification: each peer's file is there, loads all its libraries, and the programs answer a
# version query. mod_proxy.so is loaded by the bench itself (bench/throughput.ts startModProxy).
failed=0
check_file() {
  local path=$1 missing
  if [ ! -f "$path" ]; then echo "MISSING  $path" >&2; failed=1; return 1; fi
  missing=$(ldd "$path" | grep 'not found' | tr -s ' \t' ' ' | paste -sd';' || true)
  if [ -n "$missing" ]; then echo "BROKEN   $path: $missing" >&2; failed=1; return 1; fi
}
check_bin() {
  local path=$1 out; shift
  check_file "$path" || return 0
  if ! out=$("$path" "$@" 2>&1); then echo "BROKEN   $path $*: $(echo "$out" | head -n 2)" >&2; failed=1; return; fi
  printf 'ok       %-17s %s  (%s)\n' "$(basename "$path")" "$path" "$(echo "$out" | grep -m1 . | cut -c1-60)"
}

check_bin "$cache/haproxy/usr/sbin/haproxy" -v
check_bin "$cache/socat/usr/bin/socat" -V
mod="$cache/proftpd-mod-proxy/usr/lib/proftpd/mod_proxy.so"
if check_file "$mod"; then
  printf 'ok       %-17s %s  (%s)\n' mod_proxy.so "$mod" "$(cat "$cache/proftpd-mod-proxy/.versions")"
fi
[ -f "$cache/proftpd/usr/lib/proftpd/mod_tls.so" ] || { echo "MISSING  $cache/proftpd/usr/lib/proftpd/mod_tls.so (proftpd-mod-crypto)" >&2; failed=1; }

[ "$failed" = 0 ] || die "some peers are missing or broken (see above)"
echo "bench-deps: all peers present"
