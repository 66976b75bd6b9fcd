#!/usr/bin/env bash
# Installs the Debian packages that building, testing and running Ridgeline need.
# Idempotent: when everything is installed it asks dpkg once and exits (well under a second).
# Run as root, or as a user who may sudo. Set RIDGELINE_NO_INSTALL=1 to only check.
# --bench adds what `make bench` needs on top (gnuplot for the DET curves).
set -euo pipefail

packages=(
  # build
  build-essential pkg-config
  # store, HTTP, JSON, Unicode, images, random ids and token hashing
  librocksdb-dev libmicrohttpd-dev libjansson-dev libutf8proc-dev libpng-dev libsodium-dev
  # the program's allocator (many threads, many small JSON values)
  libjemalloc-dev
  # fingerprint readers
  libfprint-2-dev libglib2.0-dev
  # comparison kernels on OpenCL; PoCL runs them on the CPU where there is no GPU
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd
  # tests: unit framework, HTTP client for the integration tests, curl for the README tour
  libcmocka-dev libcurl4-openssl-dev curl
  # the desk UI's browser test (headless Chromium driven through Selenium; Python for the driver)
  chromium chromium-driver python3-venv
)
if [ "${1:-}" = --bench ]; then
  packages+=(gnuplot-nox wrk)
fi

# One dpkg query for everything, then set arithmetic: fast on the common path.
installed=" $(dpkg-query -W -f='${Package}:${db:Status-Status} ' 2>/dev/null || true) "
missing=()
for p in "${packages[@]}"; do
  [[ "$installed" == *" $p:installed "* ]] || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: missing Debian packages: ${missing[*]}" >&2
if [ "${RIDGELINE_NO_INSTALL:-0}" = 1 ]; then
  echo "deps: RIDGELINE_NO_INSTALL=1, not installing" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "deps: apt-get not found; install the packages above with your system's package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install packages" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps: installed ${#missing[@]} package(s)" >&2
