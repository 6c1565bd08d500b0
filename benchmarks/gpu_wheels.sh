#!/usr/bin/env bash
# Prepare, on a machine with pip access, what benchmarks/gpu_check.sh installs on the GPU
# machine (which reaches no package index): .whl/ with physampler itself (a pure-Python
# wheel of this checkout) and the two packages that machine's image lacks, netCDF4 and
# cftime (abi3 wheels for its Python 3.12).  .whl/ is ignored by git; carry it to the call.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
python3 -m pip wheel -q --no-deps --no-build-isolation -w .whl .
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl netCDF4==1.7.5.1.post1 cftime==1.6.6.1
ls -l .whl
