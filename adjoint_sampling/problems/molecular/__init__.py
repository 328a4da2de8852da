"""Molecular training problems (torsional and Cartesian), their datasets and batch contexts."""

from adjoint_sampling.problems.molecular.cartesian import CartesianMoleculeProblem
from adjoint_sampling.problems.molecular.context import CartesianContext, MolecularGraphBatch, TorsionalContext
from adjoint_sampling.problems.molecular.dataset import (
    MoleculeRecord,
    prepare_molecule,
    prepare_molecules,
    read_smiles_file,
)
from adjoint_sampling.problems.molecular.torsional import TorsionalMoleculeProblem

__all__ = [
    "CartesianContext",
    "CartesianMoleculeProblem",
    "MolecularGraphBatch",
    "MoleculeRecord",
    "TorsionalContext",
    "TorsionalMoleculeProblem",
    "prepare_molecule",
    "prepare_molecules",
    "read_smiles_file",
]
