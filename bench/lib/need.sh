# Sourced by the benchmarks' run.sh: `need TOOL PACKAGE...` installs the
# Debian packages when TOOL is not on the PATH (as root, with apt-get), so
# a benchmark runs on a fresh machine; `need_kvm` checks /dev/kvm.
need() {
  local tool=$1; shift
  command -v "$tool" >/dev/null && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "bench/$(basename "$(dirname "$0")"): $tool is needed (apt-get install $*)" >&2
    exit 1
  fi
  echo "installing $* for $tool..." >&2
  if [ -z "${NEED_APT_UPDATED:-}" ]; then apt-get update -qq; NEED_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
  command -v "$tool" >/dev/null || { echo "$tool is still missing after installing $*" >&2; exit 1; }
}
need_kvm() {
  [ -w /dev/kvm ] || { echo "bench/$(basename "$(dirname "$0")"): /dev/kvm is missing or not writable" >&2; exit 1; }
}
