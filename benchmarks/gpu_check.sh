#!/usr/bin/env bash
# The GPU checks of issue 16, in one call of about 8 minutes on one CUDA device.
#
#   here, once:   bash benchmarks/gpu_wheels.sh        (physampler, netCDF4, cftime as wheels in .whl/)
#   there:        bash benchmarks/gpu_check.sh         (device tool: carry [".whl"], timeout_s 600)
#
# Writes under $OUT (default ./gpu-check-out): nvidia-smi.txt, versions.txt, pytest-cuda.txt (the
# CUDA half of the device-parametrized tests: batched == per-walker in float64, bf16/TF32
# bounds, torch.compile against eager, a network run stopped and resumed, fault reports) and
# nn_throughput.txt (p = 67, d_model 128 transformer: float32 / TF32 / bf16, W = 1 … 1024 or
# the largest that fits, against the single-walker loop; compiled rows at W = 64 and 1024; the
# whole step captured in a CUDA graph at W = 1, 64 and 1024).  The parts' limits add up to 570 s.
# Each part has its own time limit, so one that hangs cannot take the others' output with it.
set -uo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$REPO/gpu-check-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PHYSAMPLER_THREADS=4
if ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$REPO"/.whl/*.whl || { echo "wheel install failed" | tee "$OUT/versions.txt"; exit 3; }
    export PYTHONPATH=/tmp/site
fi
cd /tmp  # the checkout's physampler/ (without its adapters/ and models/ mapped in) must not shadow the install
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 - <<'PY' 2>&1 | tee "$OUT/versions.txt"
import torch, physampler, netCDF4
print("torch", torch.__version__, "cuda", torch.version.cuda, "device",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none: CUDA is not available")
print("physampler", physampler.__version__, "from", physampler.__file__, "; netCDF4", netCDF4.__version__)
PY
timeout 210 python3 -m pytest -q -m cuda -p no:cacheprovider -o addopts="" \
    "$REPO/tests/test_devices.py" "$REPO/tests/test_nn_adapter.py" "$REPO/tests/test_graph.py" 2>&1 | tee "$OUT/pytest-cuda.txt"
{
    timeout 170 python3 "$REPO/benchmarks/nn_throughput.py" --device cuda --p 67 --d-model 128 --seconds 0.5 \
        --threads 4 --walkers 1 4 16 64 256 1024
    timeout 100 python3 "$REPO/benchmarks/nn_throughput.py" --device cuda --p 67 --d-model 128 --seconds 0.5 \
        --threads 4 --walkers 64 1024 --precision default --compile
    timeout 90 python3 "$REPO/benchmarks/nn_throughput.py" --device cuda --p 67 --d-model 128 --seconds 0.5 \
        --threads 4 --walkers 1 64 1024 --precision default --capture cuda_graph
} 2>&1 | tee "$OUT/nn_throughput.txt"
echo "gpu_check done; files in $OUT"
