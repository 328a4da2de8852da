"""Validation experiment: the shipped sampler with another conformers_per_local_structure, in-process
(``--workers 1``), as run for ``cpls_inprocess_{8,16}/`` before that setting was a checkpoint field.
With the checkpoint field the same runs are ``sampling_variant ... --conformers-per-local-structure N``.

    OMP_NUM_THREADS=1 python cpls_inprocess_driver.py 8 bench conformers run \
        --test-list data/validation_ensembles/validation.txt --conformer-dir data/validation_ensembles \
        --methods etkdg,cpls8 --model cpls8=models/shipped/default.pt --out runs/cpls/val_8 --workers 1
"""
import dataclasses
import sys

from adjoint_sampling.cli.entry import main
from adjoint_sampling.generation import sampler as sampler_module

per_structure = int(sys.argv[1])
original = sampler_module.Sampler.__post_init__


def with_other_structure_count(self):
    original(self)
    self.checkpoint = dataclasses.replace(self.checkpoint, conformers_per_local_structure=per_structure)


sampler_module.Sampler.__post_init__ = with_other_structure_count
sys.exit(main(sys.argv[2:]))
