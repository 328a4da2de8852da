#!/usr/bin/env bash
# The GPU run of the GNN potential candidates (the device tool's machine): install the carried wheels
# (.whl: this project's wheel, mace-torch and the modules it imports), train every config given side
# by side on the one GPU within BUDGET_S seconds, pack run dirs (without intermediate checkpoints)
# into $OUT/energy_runs.tar.gz.  usage: [FIT_DATA=PACK] configs/energy/gpu_run.sh BUDGET_S CONFIG.yaml...
# FIT_DATA replaces the configs' data (the label pack that configs/device/prepare_energy_run.sh makes:
# the labelled extxyz files no longer fit into what a device call sends).
set -u
budget=${1:?budget in seconds}; shift
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
python3 -c "import torch, e3nn; print('torch', torch.__version__, 'e3nn', e3nn.__version__, torch.cuda.get_device_name())" 2>&1 | grep -v cuequi
runs=/tmp/energy_runs; mkdir -p $runs
for cfg in "$@"; do
  name=$(basename "$cfg" .yaml)
  timeout $((budget + 20)) python3 configs/energy/fit_within_budget.py "$cfg" --out $runs/$name --budget-s "$budget" --device cuda ${FIT_DATA:+--data "$FIT_DATA"} > $runs/$name.log 2>&1 &
done
wait
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
for cfg in "$@"; do
  name=$(basename "$cfg" .yaml)
  echo "== $name"; grep -v cuequi $runs/$name.log | tail -4; tail -1 $runs/$name/run/metrics.jsonl
done
tar czf "${OUT:-.}/energy_runs.tar.gz" -C $runs --exclude='*/checkpoints' --exclude='*/calibration' .
