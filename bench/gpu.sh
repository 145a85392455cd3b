#!/usr/bin/env bash
# Every GPU benchmark of issue 10 in ONE command, each stage under its own time limit, the whole
# inside DUEL_GPU_DEADLINE seconds (default 560: the device tool allows 600 per command).
#
#   bash bench/gpu.sh                    # on the device: JSON + gpu.log into $OUT
#   bash bench/gpu.sh sampler            # only the named stages (a second call for what was cut)
#   PYTHON=.venv/bin/python bash bench/gpu.sh --check   # here, on CPU: every stage's code path, tiny shapes
#
# --check runs without time limits (a check must pass however loaded the machine is) unless
# DUEL_GPU_DEADLINE (the whole run) or DUEL_GPU_STAGE_LIMIT (each stage) are set, and compiles
# with --xla_backend_optimization_level=0 (compile time was most of it).
#
# Stages, in priority order: memory e2e-pythia-1b train_step sampler e2e-qwen2.5-0.5b; and, only
# when named, profile (bench/gpu_profile.py: the kernels of one decode call, device <-> host rates)
# and attention (Qwen2.5-0.5B decode with cuDNN's fused attention, a what-if: bench.common.
# use_cudnn_attention; its baseline is the sampler stage of the same call). The next GPU call:
# `bash bench/gpu.sh profile sampler attention`, docs/scale.md.
# Python: $PYTHON, else python3 (on the device image, the one with JAX + CUDA and torch). If the
# preflight (a tiny generate + DPO step) fails and .whl/ holds wheels (carried: see docs/scale.md,
# "Measuring on a GPU"), they are installed into /tmp/site and the preflight runs again.
# Results: $OUT if set, else bench/results/gpu/; copy the JSON into bench/results/ to commit them.
set -uo pipefail
cd "$(dirname "$0")/.."

CHECK=0
STAGES=()
for a in "$@"; do
  case "$a" in
    --check) CHECK=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    memory|e2e-pythia-1b|e2e-qwen2.5-0.5b|train_step|sampler|profile|attention) STAGES+=("$a") ;;
    *) echo "bench/gpu.sh: unknown stage or flag '$a' (stages: memory e2e-pythia-1b e2e-qwen2.5-0.5b train_step sampler profile attention; flag: --check)" >&2; exit 2 ;;
  esac
done
[ ${#STAGES[@]} -eq 0 ] && STAGES=(memory e2e-pythia-1b train_step sampler e2e-qwen2.5-0.5b)

OUT="${OUT:-bench/results/gpu}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
DEADLINE="${DUEL_GPU_DEADLINE:-560}"
[ "$CHECK" = 1 ] && DEADLINE="${DUEL_GPU_DEADLINE:-0}"  # 0: no deadline
export DUEL_BENCH_RESULTS="$OUT" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and torch share the GPU; JAX's peak then is its real use
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-/tmp/duel-jax-cache}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# stage -> seconds it may take at most, and its arguments (full shapes; --check: the same path, tiny)
declare -A LIMIT=([memory]=80 [e2e-pythia-1b]=110 [train_step]=150 [sampler]=240 [e2e-qwen2.5-0.5b]=110 [profile]=180 [attention]=120)
declare -A ARGS=(
  [memory]="bench/memory.py --run --variants preset,mb1 --run-variants preset"
  [e2e-pythia-1b]="bench/e2e.py --shape pythia-1b --steps 3 --out e2e-pythia-1b"
  [e2e-qwen2.5-0.5b]="bench/e2e.py --shape qwen2.5-0.5b --steps 3 --out e2e-qwen2.5-0.5b --publish-layers 0"
  [train_step]="bench/train_step.py --full --repeat 3"
  [sampler]="bench/sampler.py --full --repeat 2 --no-plain"
  [profile]="bench/gpu_profile.py"
  [attention]="bench/sampler.py --full --repeat 2 --no-plain --no-peer --models qwen2.5-0.5b --attention cudnn --name attention_cudnn"
)
if [ "$CHECK" = 1 ]; then
  ARGS[memory]="bench/memory.py --check --run --variants preset,mb1 --run-variants preset"
  ARGS[e2e-pythia-1b]="${ARGS[e2e-pythia-1b]} --check"
  ARGS[e2e-qwen2.5-0.5b]="${ARGS[e2e-qwen2.5-0.5b]} --check"
  ARGS[train_step]="bench/train_step.py --check"
  ARGS[sampler]="bench/sampler.py --check --no-plain"
  ARGS[profile]="bench/gpu_profile.py --check"
  ARGS[attention]="bench/sampler.py --check --no-plain --no-peer --models qwen2.5-0.5b --attention cudnn --name attention_cudnn"
  for s in "${!LIMIT[@]}"; do LIMIT[$s]="${DUEL_GPU_STAGE_LIMIT:-0}"; done  # 0: no limit
  # the check's shapes run in milliseconds and XLA's compiles were most of its time: compile with
  # no LLVM optimisation (XLA's own HLO passes and buffer assignment still run: memory.json keeps
  # its figures; only the kernels are slower, and check numbers mean nothing). XLA_FLAGS given win.
  export XLA_FLAGS="--xla_backend_optimization_level=0${XLA_FLAGS:+ $XLA_FLAGS}"
fi

main() {
  echo "bench/gpu.sh: stages ${STAGES[*]}; check=$CHECK; out=$OUT; deadline ${DEADLINE}s; python $PY"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  local req=--require-gpu
  [ "$CHECK" = 1 ] && req=
  if ! "$PY" bench/gpu_report.py preflight $req; then
    if ls .whl/*.whl >/dev/null 2>&1; then
      echo "preflight failed with the image's packages: installing the carried wheels (.whl/) into /tmp/site"
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
      export PYTHONPATH="/tmp/site:$PYTHONPATH"
      "$PY" bench/gpu_report.py preflight $req || { echo "preflight failed again: stopping"; return 1; }
    else
      echo "preflight failed and no wheels were carried (.whl/): stopping"; return 1
    fi
  fi
  local ok=() cut=() failed=() skipped=()
  for s in "${STAGES[@]}"; do
    local limit=${LIMIT[$s]}
    if (( DEADLINE > 0 )); then
      local left=$(( DEADLINE - SECONDS ))
      if (( left < 30 )); then skipped+=("$s"); echo "=== $s: SKIPPED, ${left}s left"; continue; fi
      (( limit == 0 || limit > left )) && limit=$left
    fi
    echo "=== $s (limit ${limit}s, 0 = none): $PY ${ARGS[$s]}"
    local t0=$SECONDS
    local rc
    if (( limit > 0 )); then
      # shellcheck disable=SC2086
      timeout --kill-after=10 "$limit" "$PY" ${ARGS[$s]}
      rc=$?
    else
      # shellcheck disable=SC2086
      "$PY" ${ARGS[$s]}
      rc=$?
    fi
    echo "=== $s: exit $rc after $(( SECONDS - t0 ))s"
    if (( rc == 0 )); then ok+=("$s"); elif (( rc == 124 || rc == 137 )); then cut+=("$s"); else failed+=("$s"); fi
  done
  "$PY" bench/gpu_report.py summary "$OUT"
  echo "done: ${ok[*]:-none}; cut at their limit (partial JSON kept): ${cut[*]:-none}; failed: ${failed[*]:-none}; skipped: ${skipped[*]:-none}"
  [ ${#cut[@]} -eq 0 ] && [ ${#skipped[@]} -eq 0 ] || echo "run again for: bash bench/gpu.sh ${cut[*]} ${skipped[*]}"
  [ ${#failed[@]} -eq 0 ]
}

main 2>&1 | tee "$OUT/gpu.log"
