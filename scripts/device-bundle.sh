#!/bin/sh
# Packs what scripts/device-check.sh needs on a lent GPU machine, which has
# CUDA and the NVIDIA driver but none of our libraries and no package
# registry: the built binary and the OpenCL tests, every shared library they
# load but glibc and the C++ runtime (the machine's own are newer), and the
# FVC2002 B-sets that bench identify hides among its synthetic fingers.
# Writes .devbundle/bundle.tar.gz (git ignores .devbundle/); name .devbundle
# in the device tool's `carry`.
#
# usage: scripts/device-bundle.sh   (after make; RIDGELINE_TESTDATA as for the tests)
set -eu
cd "$(dirname "$0")/.."
data=${RIDGELINE_TESTDATA:-../shared/data}
bins="build/ridgeline build/tests/test_kern_ocl build/tests/test_kern_mcc"
for b in $bins; do
    [ -x "$b" ] || { echo "device-bundle: $b missing: run make and make tests first" >&2; exit 1; }
done
[ -d "$data/fingerprints/fvc2002" ] || { echo "device-bundle: no $data/fingerprints/fvc2002" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/data/fingerprints"
cp $bins "$stage/bin/"
# The loader is listed by name only, without a path; libc and friends stay
# the machine's. libOpenCL (ocl-icd) travels: the driver brings only its ICD.
for lib in $(ldd $bins | awk '$3 ~ /^\// { print $3 }' | sort -u); do
    case $(basename "$lib") in
    libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | ld-linux*) ;;
    libstdc++.so.* | libgcc_s.so.*) ;;
    *) cp -L "$lib" "$stage/lib/" ;;
    esac
done
cp -r "$data/fingerprints/fvc2002" "$stage/data/fingerprints/"
git rev-parse --short HEAD >"$stage/COMMIT" 2>/dev/null || echo unknown >"$stage/COMMIT"
mkdir -p .devbundle
tar -C "$stage" -czf .devbundle/bundle.tar.gz .
echo "device-bundle: .devbundle/bundle.tar.gz, $(du -h .devbundle/bundle.tar.gz | cut -f1)" \
    "($(ls "$stage/lib" | wc -l) libraries, commit $(cat "$stage/COMMIT"))"
