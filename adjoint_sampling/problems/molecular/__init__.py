"""Molecular training problems (torsional and Cartesian), their datasets and batch contexts."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "CartesianContext": ".context",
        "CartesianMoleculeProblem": ".cartesian",
        "MolecularGraphBatch": ".context",
        "MoleculeRecord": ".dataset",
        "TorsionalContext": ".context",
        "TorsionalMoleculeProblem": ".torsional",
        "prepare_molecule": ".dataset",
        "prepare_molecules": ".dataset",
        "read_smiles_file": ".dataset",
    },
)
