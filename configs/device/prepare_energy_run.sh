#!/usr/bin/env bash
# Make the checkout ready for a device call that trains GNN potentials (configs/energy/gpu_run.sh).
# What a call sends is at most 64 MiB; the committed labels alone are more. So: build this project's
# wheel into .whl/, pack the train and validation labels into .device/ (about 31 MiB instead of 59),
# take the heavy committed folders out of the index (device_tree.py slim; files stay on disk) and
# check the size. Then, with the device tool:
#   run(command="FIT_DATA=.device/spice_xtb.pack.npz bash configs/energy/gpu_run.sh 480 configs/energy/X.yaml ...",
#       carry=[".whl", ".device"], timeout_s=560)
# and afterwards, always:  python configs/device/device_tree.py restore
# MACE configs also need mace-torch and the modules it imports as wheels in .whl/ (not added here).
# usage: bash configs/device/prepare_energy_run.sh   (from the repository root)
set -euo pipefail
python=${PYTHON:-.venv/bin/python}
exclude=$(git rev-parse --git-dir)/info/exclude
mkdir -p "$(dirname "$exclude")" .whl .device
for path in /.whl/ /.device/; do grep -qxF "$path" "$exclude" 2>/dev/null || echo "$path" >> "$exclude"; done
rm -f .whl/adjoint_sampling-*.whl
"$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir .whl .
"$python" -m adjoint_sampling.labelling.pack .device/spice_xtb.pack.npz \
    "data/labels/spice_xtb/data/*/chunk-*.extxyz.gz" --splits train validation
"$python" configs/device/device_tree.py slim   # its SLIM_PATHS: labels, benchmark records, synthetic models
"$python" configs/device/device_tree.py size --carry .whl --carry .device
