#!/usr/bin/env bash
# gpu-check.sh checks the GPU path on a machine with an NVIDIA GPU and a
# CUDA driver, from binaries built elsewhere (it builds nothing):
#
#   DIR/cuda-backend.test     go test -c -tags cuda ./compute/train/cuda
#   DIR/gpu-nvml.test         go test -c -tags nvml ./compute/gpu
#   DIR/gpu-smi.test          go test -c ./compute/gpu
#   DIR/cyxwiz                the daemon (make build GOTAGS=nvml: no openblas tag)
#   DIR/cyxwiz-cuda-worker    make cuda-worker
#   DIR/mnist/                scripts/mnist-data.sh
#
# (each binary may be gzipped as NAME.gz). It runs GPU detection, every
# backend operation and a whole training run against the CPU backend,
# cuBLAS GEMM against PyTorch's (when python3 has torch), the worker on
# MNIST, and a two-node devnet whose provider takes a GPU job through the
# market. Usage: scripts/gpu-check.sh DIR
set -uo pipefail
dir=$(cd "${1:?usage: gpu-check.sh DIR}" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
status=0
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*"; status=1; }

for gz in "$dir"/*.gz; do
	[ -e "$gz" ] && gunzip -f "$gz"
done
chmod +x "$dir"/*.test "$dir"/cyxwiz "$dir"/cyxwiz-cuda-worker 2>/dev/null

step "the machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv || fail "nvidia-smi"
if ! ldconfig -p | grep -q 'libcublas.so.13' && [ ! -e /usr/local/cuda/lib64/libcublas.so.13 ]; then
	lib=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null)
	[ -n "$lib" ] && export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	echo "libcublas.so.13 from ${lib:-nowhere}"
fi

step "GPU detection (NVML, then nvidia-smi)"
CYXWIZ_GPU_EXPECT=1 timeout 60 "$dir/gpu-nvml.test" -test.run '^TestDetect$' -test.v || fail "detection through NVML"
CYXWIZ_GPU_EXPECT=1 timeout 60 "$dir/gpu-smi.test" -test.run '^TestDetect$' -test.v || fail "detection through nvidia-smi"

step "every backend operation, and a training run, against the CPU backend"
timeout 180 "$dir/cuda-backend.test" -test.v -test.count=1 2>&1 | grep -v '^=== RUN' || fail "backend tests"

step "GEMM: cuBLAS through our backend, then PyTorch (FP32, TF32 off)"
timeout 120 "$dir/cuda-backend.test" -test.run '^$' -test.bench Sgemm -test.benchtime 2s || fail "GEMM benchmark"
timeout 120 python3 - <<'PY' || echo "no PyTorch reference"
import time, torch
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
for n in (1024, 4096, 8192):
    a = torch.full((n, n), 0.5, device="cuda"); b = torch.full((n, n), 0.25, device="cuda")
    for _ in range(3): a @ b
    torch.cuda.synchronize(); start = time.perf_counter(); runs = 0
    while time.perf_counter() - start < 2 or runs < 3:
        a @ b; runs += 1
        if runs % 10 == 0: torch.cuda.synchronize()
    torch.cuda.synchronize(); el = time.perf_counter() - start
    print(f"torch sgemm n={n}: {2*n**3*runs/el/1e9:.0f} GFLOPS")
PY

step "the worker alone: examples/mnist/cnn.json on MNIST"
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["train"]))' "$repo/examples/mnist/cnn.json" >"$work/train.json"
timeout 300 "$dir/cyxwiz-cuda-worker" train -spec "$work/train.json" -data "$dir/mnist" -out "$work/out" \
	>"$work/metrics.jsonl" || fail "worker"
grep '"kind":"epoch"' "$work/metrics.jsonl"
ls -l "$work/out"

step "a devnet of two daemons: the provider offers the GPU and takes a GPU job"
mkdir -p "$repo/.cache/mnist" && cp "$dir"/mnist/* "$repo/.cache/mnist/"
"$dir/cyxwiz" devnet --nodes 2 --dir "$work/net" >"$work/devnet.log" 2>&1 &
devnet=$!
for _ in $(seq 1 300); do grep -q "devnet ready" "$work/devnet.log" && break; sleep 0.1; done
grep -iE "GPU" "$work/devnet.log" | head -4
for _ in $(seq 1 50); do
	"$dir/cyxwiz" --repo "$work/net/node0" providers --gpu --json | grep -q '"id"' && break
	sleep 0.2
done
"$dir/cyxwiz" --repo "$work/net/node0" providers --gpu
(cd "$repo" && timeout 300 "$dir/cyxwiz" --repo "$work/net/node0" job submit examples/mnist/cnn.json --wait) || fail "GPU job through the market"
kill -INT "$devnet"; wait "$devnet"
rm -rf "$work"
exit $status
