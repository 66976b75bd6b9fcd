#!/usr/bin/env bash
# Enforces the one-way dependencies between layers by reading #include lines:
#   cmd -> api -> registry -> demographics, biometrics -> kernels -> common
#   registry -> store -> common;  device -> biometrics;  api -> device
# A folder may include its own headers and those of the layers it may use.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
  [common]="common"
  [kernels]="kernels common"
  [store]="store common"
  [demographics]="demographics kernels common"
  [biometrics]="biometrics kernels common"
  [device]="device biometrics kernels common"
  [registry]="registry store demographics biometrics kernels common"
  [ingest]="ingest registry store demographics biometrics kernels common"
  [api]="api registry device store demographics biometrics kernels common"
  [bench]="bench ingest api registry device store demographics biometrics kernels common"
  [cmd]="cmd bench ingest api registry device store demographics biometrics kernels common"
)

bad=0
for dir in "${!allowed[@]}"; do
  [ -d "$dir" ] || continue
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"${line#*:}")
    layer=${inc%%/*}
    [ "$layer" = "$inc" ] && continue   # same-folder include without a path
    if [[ " ${allowed[$dir]} " != *" $layer "* ]]; then
      echo "check-layers: $file includes $inc, but $dir/ may only use: ${allowed[$dir]}" >&2
      bad=1
    fi
  done < <(grep -H -E '^[[:space:]]*#[[:space:]]*include[[:space:]]+"' "$dir"/*.[ch] 2>/dev/null || true)
done
[ $bad = 0 ] && echo "check-layers: dependencies go one way"
exit $bad
