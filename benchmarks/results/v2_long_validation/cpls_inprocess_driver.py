"""Validation experiment: the shipped sampler with another conformers_per_local_structure (in-process, workers 1)."""
import sys
from adjoint_sampling.generation import sampler as sm
per = int(sys.argv[1])
orig = sm.Sampler.__post_init__
def patched(self):
    orig(self)
    self.conformers_per_local_structure = per
sm.Sampler.__post_init__ = patched
from adjoint_sampling.cli.entry import main
sys.exit(main(sys.argv[2:]))
