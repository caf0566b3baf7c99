#!/usr/bin/env bash
# Installs what the end-to-end tests drive: real FTP servers, real FTP clients, Prometheus and
# the network tools. Idempotent, non-interactive, root on Debian 12.
#
# vsftpd, proftpd and pure-ftpd all declare `Conflicts: ftp-server`, so apt can install only one.
# None of them is installed: each is unpacked with `dpkg-deb -x` into .cache/debs/<name>/ (one
# layout for all three, and no package script can start an FTP service). Their runtime
# libraries are installed with apt-get. test/e2e/lib/bin.ts looks a binary up on PATH first,
# then in that cache, the same order `locate` uses below.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$repo/.cache/debs"
export DEBIAN_FRONTEND=noninteractive

die() { echo "install-deps: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (apt-get and dpkg need it)"

# The tools the tests run, installed with apt (no recommends: prometheus would pull in exporters).
# util-linux (essential anyway) has setpriv, which gives each test server a parent-death signal.
# python3-pyftpdlib is a fourth FTP server (test/diagnose/pyftpdlib.test.ts), pure Python and
# without Conflicts: ftp-server, so apt installs it alongside.
# chromium is the real browser test/e2e/status-page.test.ts drives with playwright-core (its
# executablePath is /usr/bin/chromium; `npx playwright install` would download a browser of its own).
apt_pkgs=(curl wget lftp python3 python3-pyftpdlib iproute2 nftables prometheus openssl perl util-linux systemd chromium)

# Cache dir name -> the Debian packages unpacked into it. proftpd-core holds the proftpd binary,
# ftpasswd and the modules dir (usr/lib/proftpd); mod-crypto adds mod_tls.so, which
# mod_proxy needs loaded first.
declare -A server_debs=(
  [vsftpd]="vsftpd"
  [proftpd]="proftpd-core proftpd-mod-crypto"
  [pure-ftpd]="pure-ftpd"
)

# installed, lib_deps, apt_update_once, unpack_debs, apt_install_quiet.
. "$(dirname "${BASH_SOURCE[0]}")/deb-lib.sh"

for name in "${!server_debs[@]}"; do
  # .unpacked is written last, so an interrupted unpack is redone.
  # shellcheck disable=SC2086 # the package list of one name, word-split on purpose
  if [ ! -f "$cache/$name/.unpacked" ]; then apt_update_once; unpack_debs "$cache/$name" ${server_debs[$name]}; fi
done

mapfile -t libs < <(cat "$cache"/*/.libdeps | sort -u)
to_install=()
for p in "${apt_pkgs[@]}" "${libs[@]}"; do installed "$p" || to_install+=("$p"); done

if [ ${#to_install[@]} -gt 0 ]; then apt_install_quiet "${to_install[@]}"; fi

# The tests start Prometheus themselves on their own ports: a packaged service must not hold 9090.
if [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then
  /etc/init.d/prometheus stop
fi

# Verification: every binary is found, loads all its libraries and answers a version query.
locate() {
  local bin=$1 dir found
  if found=$(PATH="$PATH:/usr/sbin:/sbin" command -v "$bin"); then echo "$found"; return; fi
  for dir in "${!server_debs[@]}"; do
    for sub in usr/sbin usr/bin; do
      [ -x "$cache/$dir/$sub/$bin" ] && { echo "$cache/$dir/$sub/$bin"; return; }
    done
  done
  return 1
}

failed=0
check() {
  local bin=$1; shift
  local path out
  if ! path=$(locate "$bin"); then
    echo "MISSING  $bin: not on PATH nor under .cache/debs/" >&2; failed=1; return
  fi
  if [ "$(head -c4 "$path" | tail -c3)" = ELF ]; then
    if ldd "$path" | grep -q 'not found'; then
      echo "BROKEN   $bin ($path): $(ldd "$path" | grep 'not found' | tr -s ' \t' ' ' | paste -sd';')" >&2
      failed=1; return
    fi
  fi
  # `vsftpd -v` writes its version to fd 0, so stdin is the capture pipe too (none of these reads it).
  if ! out=$("$path" "$@" 0>&1 2>&1); then
    echo "BROKEN   $bin ($path $*): $(echo "$out" | head -n 2)" >&2; failed=1; return
  fi
  printf 'ok       %-11s %s  (%s)\n' "$bin" "$path" "$(echo "$out" | grep -m1 . | cut -c1-60)"
}

check setpriv --version
check vsftpd -v
check proftpd -v
check ftpasswd --help
check pure-ftpd --help
check pure-pw --help
check curl --version
check wget --version
check lftp --version
check python3 --version
# Debian's module is for the system interpreter, which need not be the python3 first on PATH.
check /usr/bin/python3 -c 'import pyftpdlib; print("pyftpdlib", pyftpdlib.__ver__)'
check openssl version
check ip -V
check nft --version
check prometheus --version
check promtool --version
check chromium --version

[ "$failed" = 0 ] || die "some required tools are missing or broken (see above)"
echo "install-deps: all tools present"
