#!/usr/bin/env bash
# What Cairn's tests need from the system, in one place: scripts/test.sh and .ci/run run this before they build.
# Where something is missing it installs it (root with apt-get), saying what it installs; where it cannot, it
# stops with one sentence naming the packages and the command that installs them.
#
# Two groups of tests can be skipped instead, each only by its opt-out variable (the suite then lists them as
# skipped at its end, never as passed):
#   CAIRN_SKIP_NETNS=1    the tests that build network namespaces (the NAT lab, two hosts): they need root,
#                         iproute2 and iptables
#   CAIRN_SKIP_BROWSER=1  the gateway's dashboard in headless Chromium
set -euo pipefail

missing=()
# need PACKAGE OPT-OUT CHECK: Debian's PACKAGE is needed unless the opt-out variable (- for none) is set, and is
# there when the shell snippet CHECK succeeds.
need() {
  local pkg=$1 optout=$2 check=$3
  if [ "$optout" != - ] && [ -n "${!optout:-}" ]; then
    return 0
  fi
  bash -c "$check" >/dev/null 2>&1 || missing+=("$pkg")
}
# scripts/cargo.sh probes RISC Zero's recursion download with it; vendor/downloader fetches with it.
need curl - 'command -v curl'
# RISC Zero's C++ kernels and SQLite are compiled from source.
need build-essential - 'command -v cc && command -v c++'
# nm: a test checks that the fuzz targets' entry points are not linked into the `cairn` binary.
need binutils - 'command -v nm'
# The SIGSTOP test runs /bin/kill, not the shell's builtin.
need procps - '[ -x /bin/kill ] || [ -x /usr/bin/kill ]'
# Network namespaces: the NAT lab and the two-host test.
need iproute2 CAIRN_SKIP_NETNS 'command -v ip'
# The NAT lab's home routers.
need iptables CAIRN_SKIP_NETNS 'command -v iptables'
# The gateway's dashboard in headless Chromium.
need chromium CAIRN_SKIP_BROWSER 'command -v chromium || command -v chromium-browser'

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: installing what the tests need: ${missing[*]} (apt-get)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test-deps: the tests need ${missing[*]}, missing here: install them with \`sudo apt-get install ${missing[*]}\` (or skip the tests that need them with CAIRN_SKIP_NETNS=1 or CAIRN_SKIP_BROWSER=1, as scripts/test-deps.sh says) and run this again." >&2
    exit 1
  fi
fi

# Network namespaces need root, whatever is installed.
if [ -z "${CAIRN_SKIP_NETNS:-}" ] && [ "$(id -u)" != 0 ]; then
  echo "test-deps: the NAT lab and two-host tests build network namespaces, which needs root: run this as root, or set CAIRN_SKIP_NETNS=1 to skip them (they are then listed as skipped)." >&2
  exit 1
fi
