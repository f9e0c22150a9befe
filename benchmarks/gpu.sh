#!/usr/bin/env bash
# The GPU checks of issues 7 and 9 (benchmarks) in one prepared device call.
#
#   here:   bash benchmarks/gpu.sh wheels    # .wheels/: the Python 3.12 wheels the device image lacks
#   there:  bash benchmarks/gpu.sh run       # device tool: carry [".wheels"], timeout_s 600 (BUDGET=550 s)
#
# The device image has Python 3.12 with torch, numpy, pandas, scipy, matplotlib, pyyaml, typer and
# rich, and no network: optuna, pydantic, plotly and what they need travel as wheels (about 20 MB;
# .wheels is git-ignored).  `run` writes logs, the benchmark JSON and the updated RESULTS.md to $OUT
# (benchmarks/out/gpu when $OUT is unset) and packs them all into $OUT/gpu-run.tar.gz; every step has its own time limit, so one slow step
# cannot take the others' time.  QUICK=1 DEVICE=cpu runs the same steps, tiny, on a CPU: the
# script's own smoke test.
# Not yet a stage: the TSC accuracy benchmark (issue 16).  Its data travels staged, not as wheels:
#   here:   python benchmarks/tsc.py --stage-only && tar -czf .tsc-data.tgz -C benchmarks/out/tsc data
#           (29 datasets, 55 MB of .ts, 20 MB gzipped; carry ".tsc-data.tgz" beside ".wheels")
#   there:  tar -xzf .tsc-data.tgz -C /tmp && timeout 540 python benchmarks/tsc.py --data-root /tmp/data \
#               --budget 60 --device cuda --out /tmp/tsc --append; cp /tmp/tsc/tsc.json "$OUT"
#           (--out off $OUT: it stages a copy of the data; a few datasets a call with --datasets)
# The study's MiniRocket reference needs aeon, whose llvmlite wheel alone is 56 MB (over the carry
# limit with the rest), so a device run without aeon has only the published MiniRocket_pub column.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=(optuna cmaes plotly sqlalchemy alembic colorlog "pydantic>=2.5" typing-inspection)

case "${1:-}" in
wheels)
    rm -rf .wheels && mkdir -p .wheels
    $PY -m pip download -q --dest .wheels --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any "${WHEELS[@]}" || exit 1
    rm -f .wheels/numpy-*.whl  # the image's own numpy stays
    grep -qx '/.wheels/' .git/info/exclude 2>/dev/null || echo '/.wheels/' >>.git/info/exclude
    du -sh .wheels
    ;;
run)
    OUT=${OUT:-benchmarks/out/gpu}
    mkdir -p "$OUT"
    export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
    if ! $PY -c "import optuna, pydantic, plotly" 2>/dev/null; then
        $PY -m pip install -q --no-index --find-links .wheels "${WHEELS[@]}" 2>&1 | tail -3
    fi
    DEVICE=${DEVICE:-cuda}
    BUDGET=${BUDGET:-550}  # seconds for the whole run: a step gets at most what is left of it
    step() {  # step NAME SECONDS COMMAND...: run with a limit, keep its log, never stop the script
        local name=$1 limit=$2
        shift 2
        if ((SECONDS + limit > BUDGET)); then limit=$((BUDGET - SECONDS)); fi
        if ((limit < 20)); then
            echo "=== $name: skipped, ${limit}s left of the ${BUDGET}s budget"
            return
        fi
        echo "=== $name (limit ${limit}s): $*"
        local t0=$SECONDS
        timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
        echo "=== $name: exit $? after $((SECONDS - t0))s"
        tail -n 40 "$OUT/$name.log"
    }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
    $PY -c "import torch, optuna, pydantic; print('torch', torch.__version__, 'optuna', optuna.__version__, 'cuda', torch.cuda.is_available())"
    if [ "${QUICK:-0}" = 1 ]; then
        step gpu-tests 120 $PY -m pytest -q -p no:cacheprovider -o addopts= tests/tune/test_packs.py -k "pack_size_values"
        step throughput 300 $PY benchmarks/throughput.py --device "$DEVICE" --quick --pack --skip-vowels \
            --gesture-families gru --k 2 --variants eager --epochs 1 --min-seconds 0.5 --rounds 1 \
            --json "$OUT/throughput.json" --profile "$OUT/profile.md" --no-write
        step pack-study 300 $PY benchmarks/search.py --pack-study 4 --pack-size 2 --device "$DEVICE" --max-epochs 2 --no-write
    else
        # issue 9: a 100-trial study with and without packs (--pack-size auto: the memory probe); on a
        # journal file, whose writes cost a tenth of SQLite's (what is left besides training on a GPU).
        # 15 epochs a trial: one trial at a time must finish within the step's limit (the 2026-11-23
        # H100 run saw ~9 ms a step; at that rate, 100 trials x 15 epochs of ~9 steps take ~150 s)
        step pack-study 230 $PY benchmarks/search.py --pack-study 100 --pack-size auto --device "$DEVICE" \
            --pack-storage journal --max-epochs 15
        # issues 7 and 9: engine and packs (K=512) against the seeds' loop, gesture-like data; the GRU
        # also with compiled gate arithmetic and the fused-layers experiment row; then the top kernels of
        # an engine step and a K=512 pack step (where the time goes, if 50x is not reached)
        step throughput-gru 150 $PY benchmarks/throughput.py --device "$DEVICE" --pack --skip-vowels \
            --gesture-families gru --k 1 512 --variants graphs compile --epochs 1 --min-seconds 3 \
            --json "$OUT/throughput-gru.json" --profile "$OUT/profile-gru.md"
        step throughput-conv 100 $PY benchmarks/throughput.py --device "$DEVICE" --pack --skip-vowels \
            --gesture-families tcn transformer --k 1 512 --variants graphs --epochs 1 --min-seconds 3 \
            --json "$OUT/throughput-conv.json"
        # CUDA-only tests: CUDA graphs, the pack-size probe, GPU training paths
        step gpu-tests 60 $PY -m pytest -q -p no:cacheprovider -o addopts= -m gpu tests
        # CUDA graphs and TF32 against eager fp32: parameters after 4 steps, losses over 2 epochs
        step check 60 $PY benchmarks/throughput.py --device "$DEVICE" --skip-vowels --skip-gesture --check \
            --check-epochs 2 --check-variants eager graphs32 graphs --no-write
    fi
    cp benchmarks/RESULTS.md "$OUT/RESULTS.md"
    # one archive of every log, JSON and profile: only a few files come back from a device run
    (cd "$OUT" && tar -czf gpu-run.tar.gz --exclude=gpu-run.tar.gz -- *) && ls -l "$OUT/gpu-run.tar.gz"
    ;;
*)
    echo "usage: bash benchmarks/gpu.sh wheels|run" >&2
    exit 2
    ;;
esac
