# Shared by install-deps.sh and bench-deps.sh (sourced, not run): Debian packages unpacked into
# .cache/debs/<name>/ beside each other (some conflict when installed), and apt-get installs that
# start no service.

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

# Runtime libraries of an unpacked package: the lib* names from its control file's Depends
# (first alternative, version constraint dropped), recorded at unpack time so a rerun needs no .deb.
lib_deps() {
  dpkg-deb -f "$1" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/^ +| +$//g' | grep -E '^lib' || true
}

# apt-get update once, and only when something is to be fetched: a rerun on a ready machine
# touches no network.
updated=false
apt_update_once() {
  if [ "$updated" = false ]; then apt-get update -q; updated=true; fi
}

# unpack_debs DIR PACKAGE...: the packages' files under DIR, their libraries in DIR/.libdeps, their
# versions in DIR/.versions; DIR/.unpacked is written last, so an interrupted unpack is redone.
unpack_debs() {
  local dir=$1 dl
  shift
  dl=$(mktemp -d)
  rm -rf "$dir"
  mkdir -p "$dir"
  # apt's download sandbox user (_apt) cannot write to a root-only mktemp dir; we are root anyway.
  (cd "$dl" && apt-get -q -o APT::Sandbox::User=root download "$@")
  for deb in "$dl"/*.deb; do
    dpkg-deb -x "$deb" "$dir"
    lib_deps "$deb" >>"$dir/.libdeps"
    dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >>"$dir/.versions"
  done
  rm -rf "$dl"
  touch "$dir/.unpacked"
}

# apt_install_quiet PACKAGE...: apt-get install with no service started. invoke-rc.d asks
# policy-rc.d before starting a service; 101 means "not allowed". Ours stands only for this
# install; whatever was there before is put back on any exit.
apt_install_quiet() {
  apt_update_once
  policy=/usr/sbin/policy-rc.d
  backup=""
  if [ -e "$policy" ]; then backup=$(mktemp); cp -p "$policy" "$backup"; fi
  restore_policy() {
    if [ -n "$backup" ]; then mv -f "$backup" "$policy"; else rm -f "$policy"; fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  apt-get install -y -q --no-install-recommends "$@"
  restore_policy
  trap - EXIT
}
