#!/usr/bin/env bash
# GPU checks for the vector store, for a lent CUDA machine (see docs/gpu.md).
#
# Expects in .gpu/ (git-ignored, carried to the machine): the faiss-gpu-cu12 and
# nvidia-cuda-runtime-cu12 wheels and the cuBLAS 12->13 shim built from
# scripts/gpu/cublas12_shim.c. Runs tests/test_vectors_gpu.py, then the vector
# benchmark at 1M x 1536 with GPU shards (exact Flat, and IVF-SQ8), writing JSON to
# ${OUT:-bench-results}.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-results}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/*.whl
# The wheel preloads CUDA 12 libraries from their pip packages; ours come from LD_LIBRARY_PATH.
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 _FAISS_WHEEL_DISABLE_CUDA_PRELOAD=1
cublas13=$(find /opt /usr -name 'libcublas.so.13' 2>/dev/null | head -1)
[ -n "$cublas13" ] || { echo "no libcublas.so.13 found" >&2; exit 3; }
export LD_LIBRARY_PATH=$PWD/.gpu/shim:/tmp/site/nvidia/cuda_runtime/lib:$(dirname "$cublas13"):${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import faiss, numpy; print('faiss', faiss.__version__, 'gpus', faiss.get_num_gpus(), 'numpy', numpy.__version__)"
set +e
python3 -m pytest -q --noconftest -p no:cacheprovider tests/test_vectors_gpu.py 2>&1 | tee "$OUT/gpu-tests.log"
tests_rc=${PIPESTATUS[0]}
python3 -m benchmarks.bench_vectors --n 1000000 --dim 1536 --queries 500 --flat-max 1000000000 \
    --use-gpu always --params default --batch 200000 --out "$OUT/vectors-1m-gpu-flat.json" 2>&1 | tail -25
if [ -n "${GPU_BENCH_IVF:-}" ]; then  # slower: IVF training and assignment run on the CPU
  python3 -m benchmarks.bench_vectors --n 1000000 --dim 1536 --queries 500 --factory 'IVF{nlist},SQ8' \
      --use-gpu always --params 'nprobe=16;nprobe=64;nprobe=256' --batch 200000 \
      --out "$OUT/vectors-1m-gpu-ivfsq8.json" 2>&1 | tail -25
fi
exit $tests_rc
