#!/usr/bin/env bash
# The GPU checks of the training code, in one call to a lent GPU machine (no Spark, no network there).
# Here first: `python bench/gpu_training.py prepare` writes the bundle (.gpu/: training shards, the
# workers' settings, Horovod's sdist, cffi wheels). There, with .gpu carried: this script.
# Here after: `gpu_training.py evaluate --device-out <the files that came back>`.
#   1. train_worker under torchrun on CUDA + NCCL and on the CPU + Gloo, same shards and seed.
#   2. Horovod 0.28.1 built from the sdist with NCCL GPU operations (time-boxed), then train_worker
#      under horovodrun on the GPU.
# Outputs go to $OUT (at most 8 files come back).
set -u
OUT=${OUT:-bench/.gpu-out}
BUNDLE=${BUNDLE:-.gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.log"

if [ -z "${SKIP_TORCHRUN:-}" ]; then
  echo "== 1. torchrun: CUDA + NCCL vs CPU + Gloo" | tee -a "$OUT/device.log"
  python3 bench/gpu_training.py device --bundle "$BUNDLE" --out "$OUT" 2>&1 | tee -a "$OUT/device.log"
fi

echo "== 2. Horovod with NCCL" | tee -a "$OUT/device.log"
HVD_SITE=/tmp/hvd-site
# Horovod's setup.py asks for cffi at build time (setup_requires): nothing can be fetched there.
python3 -m pip install -q --upgrade --no-index --no-deps --target /tmp/build-site "$BUNDLE"/wheels/*.whl
export PYTHONPATH="/tmp/build-site:${PYTHONPATH:-}"
(
  set -e
  src=$(mktemp -d)
  tar xzf "$BUNDLE"/horovod-0.28.1.tar.gz -C "$src"
  cd "$src"/horovod-0.28.1
  # torch's headers need C++17; CUDA 13's headers too (the sdist asks for C++14 and C++11).
  sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' CMakeLists.txt horovod/torch/CMakeLists.txt
  sed -i 's/set(CMAKE_CUDA_STANDARD 11)/set(CMAKE_CUDA_STANDARD 17)/' horovod/common/ops/cuda/CMakeLists.txt
  nccl_h=$(python3 -c "import nvidia.nccl, pathlib; print(next(pathlib.Path(list(nvidia.nccl.__path__)[0]).rglob('nccl.h')))")
  nccl_so=$(python3 -c "import nvidia.nccl, pathlib; print(next(pathlib.Path(list(nvidia.nccl.__path__)[0]).rglob('libnccl.so*')))")
  mkdir -p /tmp/nccl/lib && ln -sf "$nccl_so" /tmp/nccl/lib/libnccl.so
  command -v nvcc > /dev/null || export PATH=/usr/local/cuda/bin:$PATH
  cuda_home=$(dirname "$(dirname "$(command -v nvcc)")")
  echo "nccl.h: $nccl_h; libnccl: $nccl_so; CUDA: $cuda_home ($(nvcc --version | tail -1))"
  env HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
    HOROVOD_WITHOUT_MXNET=1 HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_NCCL_LINK=SHARED \
    HOROVOD_NCCL_INCLUDE="$(dirname "$nccl_h")" HOROVOD_NCCL_LIB=/tmp/nccl/lib HOROVOD_CUDA_HOME="$cuda_home" \
    HOROVOD_BUILD_CUDA_CC_LIST=90 CMAKE_POLICY_VERSION_MINIMUM=3.5 MAKEFLAGS=-j16 \
    CXXFLAGS="-include string -include cstdint -include stdexcept -include limits -include memory -include functional" \
    timeout "${HOROVOD_BUILD_TIMEOUT:-300}" python3 -m pip install --no-build-isolation --no-deps --no-index \
    --no-cache-dir --target "$HVD_SITE" . > "$OUT/horovod_build.log" 2>&1
) ; status=$?
echo "horovod build exit status: $status" | tee -a "$OUT/device.log"
if [ "$status" -eq 0 ]; then
  export PYTHONPATH="$HVD_SITE:$PWD:$PYTHONPATH" LD_LIBRARY_PATH="/tmp/nccl/lib:${LD_LIBRARY_PATH:-}"
  python3 -m horovod.runner.launch --check-build 2>&1 | tee -a "$OUT/device.log"
  python3 - "$BUNDLE" "$OUT" <<'EOF' 2>&1 | tee -a "$OUT/device.log"
import json, pathlib, sys
bundle, out = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2])
spec = json.loads((bundle / "spec.json").read_text())
spec.update(train_dir=str(bundle / "train"), backend="horovod", use_gpu=True)
(out / "horovod_gpu.spec.json").write_text(json.dumps(spec))
EOF
  timeout 180 python3 -m horovod.runner.launch -np 1 -H localhost:1 --gloo \
    python3 bench/gpu_training.py worker --spec "$OUT/horovod_gpu.spec.json" --result "$OUT/horovod_gpu.result.pt" \
    2>&1 | tail -40 | tee -a "$OUT/device.log"
  rm -f "$OUT/horovod_gpu.spec.json"
  python3 -c "
import torch, sys
r = torch.load(sys.argv[1], weights_only=False)
print('horovod on', r['device'], 'world', r['world_size'], 'loss', r['losses'][0], '->', r['losses'][-1],
      'samples/s', round(r['samples_per_s']), 'train s', round(r['seconds'], 1))
" "$OUT/horovod_gpu.result.pt" 2>&1 | tee -a "$OUT/device.log"
else
  tail -60 "$OUT/horovod_build.log"
fi
