#!/bin/sh
# The OpenCL checks of issue #8 on a lent GPU machine, in one run: the
# kernels' tests on the GPU (identical scores to the CPU reference), then
# bench identify through the OpenCL path at 100k and 1M fingers. Made to fit
# a 15-minute device budget: one call of the device tool, with
#   carry: [".devbundle"]   (made here first by scripts/device-bundle.sh)
#   command: sh scripts/device-check.sh
#   timeout_s: 540
# Logs go to $OUT (or ./device-out): one file a step, and summary.txt.
# RIDGELINE_DEVICE_SIZES overrides the gallery sizes ("100000 1000000");
# RIDGELINE_OCL_ICD names another OpenCL driver library (a dry run here: PoCL's)
# and RIDGELINE_OPENCL_DEVICE the tests' device (default gpu).
set -u
cd "$(dirname "$0")/.."
out=${OUT:-./device-out}
mkdir -p "$out"
summary=$out/summary.txt
say() { echo "$*" | tee -a "$summary"; }

root=/tmp/ridgeline-device
rm -rf "$root" && mkdir -p "$root"
if ! tar -C "$root" -xzf .devbundle/bundle.tar.gz; then
    say "device-check: .devbundle/bundle.tar.gz missing or unreadable (run scripts/device-bundle.sh, carry .devbundle)"
    exit 1
fi
export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RIDGELINE_TESTDATA="$root/data"
say "device-check: bundle of commit $(cat "$root/COMMIT"), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L 2>&1 | tee -a "$summary"; else say "nvidia-smi: not found"; fi

# The driver's OpenCL library, announced to the bundled ICD loader.
icd=${RIDGELINE_OCL_ICD:-}
[ -n "$icd" ] || for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib; do
    if [ -e "$d/libnvidia-opencl.so.1" ]; then icd=$d/libnvidia-opencl.so.1; break; fi
done
[ -n "$icd" ] || icd=$(find / -name 'libnvidia-opencl.so*' -not -path '/proc/*' 2>/dev/null | head -1)
if [ -z "$icd" ]; then
    say "device-check: no libnvidia-opencl.so found: the driver has no OpenCL here; stopping"
    exit 1
fi
mkdir -p "$root/vendors"
echo "$icd" >"$root/vendors/nvidia.icd"
# The driver's library loads its siblings (libcuda, the JIT compiler) by name.
case $icd in /*) export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$icd")" ;; esac
export OCL_ICD_VENDORS="$root/vendors"
say "OpenCL ICD: $icd"

status=0
step() { # name, command...
    name=$1
    shift
    start=$(date +%s)
    "$@" >"$out/$name.log" 2>&1
    rc=$?
    say "$name: exit $rc in $(($(date +%s) - start)) s"
    [ "$rc" -eq 0 ] || status=1
    return $rc
}

export RIDGELINE_OPENCL_DEVICE=${RIDGELINE_OPENCL_DEVICE:-gpu}
step test_kern_ocl "$root/bin/test_kern_ocl"
step test_kern_mcc "$root/bin/test_kern_mcc"
for t in test_kern_ocl test_kern_mcc; do
    grep -h -m1 "OpenCL device:" "$out/$t.log" | tee -a "$summary"
    grep -h "PASSED\|FAILED\|SKIPPED" "$out/$t.log" | tee -a "$summary"
done

for n in ${RIDGELINE_DEVICE_SIZES:-100000 1000000}; do
    step "identify_$n" "$root/bin/ridgeline" bench identify --size "$n" --kernels opencl --exhaustive-probes 0 \
        --threads "$(nproc)"
    grep -i -m2 "opencl\|device" "$out/identify_$n.log" | tee -a "$summary"
    grep '^{' "$out/identify_$n.log" | tee -a "$summary"
done
exit $status
