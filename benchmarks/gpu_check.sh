#!/usr/bin/env bash
# Everything a GPU run should measure (issue 17), in one call: JSON lines, one per run.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the repository root
#
# 1. 3D ResNet-18, 1x96^3, batch 16, bf16, channels-last: (a) compute limit, (b) the
#    project's path with the cohort held on the device and, in the same rounds, streamed
#    with no loader workers (the default), (c) MONAI's tutorial loop, (d) the data path.
# 2. (a) and (b) streamed with 4 and 8 loader workers: the best worker count.
# 3. (a) and (b) with torch.compile (compile time excluded: warm-up steps compile).
# 4. 2D ResNet-50, 224^2, batch 128 (the radiographs config): (a), (b), (d).
#
# The GPU image has torch and Lightning but not MONAI or nibabel. Carry them as wheels in
# .whl/ (see benchmarks/README.md, "GPU check"); they are installed into /tmp/site here.
# Results go to $OUT/gpu_check.jsonl when OUT is set (the device tool), else to
# benchmarks/gpu_check.jsonl. GPU_CHECK_SMOKE=1 runs the same sequence at toy sizes on
# whatever device there is, to check the wiring in a minute or two.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if ! "$PY" -c "import monai, nibabel" 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "gpu_check: monai and nibabel are not importable by $PY and there is no .whl/ to install them from" >&2
    exit 2
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
results=${OUT:-benchmarks}/gpu_check.jsonl
: >"$results"

if [ "${GPU_CHECK_SMOKE:-0}" = 1 ]; then
  three_d=(--size 16 --batch 2 --steps 2 --warmup 1 --cohort 8)
  two_d=(--size 32 --batch 4 --steps 2 --warmup 1 --cohort 8)
else
  three_d=(--size 96 --batch 16 --steps 40 --warmup 8 --cohort 512)
  two_d=(--size 224 --batch 128 --steps 20 --warmup 5 --cohort 2048)
fi

run() {  # label, then the benchmark's arguments; keeps the printed lines, files the JSON line
  local label=$1; shift
  echo "=== $label: train_throughput.py $*"
  "$PY" benchmarks/train_throughput.py --rounds 1 "$@" | tee /tmp/gpu_check_run.log
  "$PY" -c 'import json, sys; d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); d["run"] = sys.argv[2]; print(json.dumps(d))' \
    /tmp/gpu_check_run.log "$label" >>"$results"
}

run "3d-device-resident" "${three_d[@]}"
run "3d-streamed-4-workers" "${three_d[@]}" --no-tutorial --device-cache false --loader-workers 4
run "3d-streamed-8-workers" "${three_d[@]}" --no-tutorial --device-cache false --loader-workers 8
run "3d-compiled" "${three_d[@]}" --no-tutorial --compile
run "2d-resnet50-224" "${two_d[@]}" --dims 2 --arch resnet50
echo "gpu_check: $(wc -l <"$results") runs in $results"
