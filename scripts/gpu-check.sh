#!/usr/bin/env bash
# GPU checks for the vector store, for a lent CUDA machine (see docs/gpu.md).
#
# FAISS with sm_90 (H100/H200) code: PyPI's faiss-gpu 1.15.1 (CUDA 12). Its 135 MB wheel
# is over one call's 64 MiB, so it travels as an xz tarball of the unpacked wheel in two
# parts: .gpuA/ (first call) and .gpuB/ (second call, on the same warm machine), beside
# the nvidia-cuda-runtime-cu12 wheel and two shims in .gpuB/shim: libcublas.so.12
# (cuBLAS 12 -> 13, scripts/gpu/cublas12_shim.c) and an empty libcublasLt.so.12 (FAISS
# links it but calls nothing in it). The machines carry CUDA 13 only. Older layout:
# faiss-gpu-cu12 wheels in .gpu/ (no sm_90 code: fails on Hopper with CUDA error 209).
# Runs tests/test_vectors_gpu.py, then the vector benchmark at 1M x 1536 with GPU
# shards (exact Flat; IVF-SQ8 with GPU_BENCH_IVF=1), writing JSON to ${OUT:-bench-results}.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-results}
SITE=/tmp/site
mkdir -p "$SITE"
if compgen -G ".gpuB/faiss-gpu-*.tar.xz.part-*" >/dev/null; then
  cat .gpuA/faiss-gpu-*.tar.xz.part-* .gpuB/faiss-gpu-*.tar.xz.part-* | xz -d | tar -x -C "$SITE"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpuB/*.whl
  shim=$PWD/.gpuB/shim
else
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/*.whl
  shim=$PWD/.gpu/shim
fi
cublas13=$(find /opt /usr -name 'libcublas.so.13' 2>/dev/null | head -1)
[ -n "$cublas13" ] || { echo "no libcublas.so.13 found" >&2; exit 3; }
curand10=$(find /opt /usr -name 'libcurand.so.10' 2>/dev/null | head -1)
# faiss-gpu 1.15.1 preloads CUDA 12 libraries from nvidia/<part>/lib: give it the shims
# and the machine's cuRAND 10 (same soname in CUDA 12 and 13).
mkdir -p "$SITE/nvidia/cublas/lib" "$SITE/nvidia/curand/lib"
cp "$shim"/libcublas*.so.12 "$SITE/nvidia/cublas/lib/"
[ -n "$curand10" ] && ln -sf "$curand10" "$SITE/nvidia/curand/lib/libcurand.so.10"
export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1 _FAISS_WHEEL_DISABLE_CUDA_PRELOAD=1
export LD_LIBRARY_PATH=$shim:$SITE/nvidia/cuda_runtime/lib:$(dirname "$cublas13"):${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import faiss, numpy; print('faiss', faiss.__version__, 'gpus', faiss.get_num_gpus(), 'numpy', numpy.__version__)"
set +e
python3 -m pytest -q --noconftest -p no:cacheprovider tests/test_vectors_gpu.py 2>&1 | tee "$OUT/gpu-tests.log"
tests_rc=${PIPESTATUS[0]}
[ -n "${GPU_TESTS_ONLY:-}" ] && exit $tests_rc
python3 -m benchmarks.bench_vectors --n 1000000 --dim 1536 --queries 500 --flat-max 1000000000 \
    --use-gpu always --params default --batch 200000 --out "$OUT/vectors-1m-gpu-flat.json" 2>&1 | tail -25
if [ -n "${GPU_BENCH_IVF:-}" ]; then  # slower: IVF training and assignment run on the CPU
  python3 -m benchmarks.bench_vectors --n 1000000 --dim 1536 --queries 500 --factory 'IVF{nlist},SQ8' \
      --use-gpu always --params 'nprobe=16;nprobe=64;nprobe=256' --batch 200000 \
      --out "$OUT/vectors-1m-gpu-ivfsq8.json" 2>&1 | tail -25
fi
exit $tests_rc
