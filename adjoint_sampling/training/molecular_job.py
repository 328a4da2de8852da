"""Registers ``problem: {kind: molecules, mode: torsional|cartesian, ...}`` for training jobs.

The ``problem:`` section is read into :class:`MolecularProblemParams`. What a sampler needs to
rebuild the energy and the local structures goes into the checkpoint (``describe()``), so a
checkpoint alone is enough to sample.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from adjoint_sampling.chemistry.graph import ELEMENTS
from adjoint_sampling.chemistry.parsing import canonical_smiles
from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.base import EnergyModel
from adjoint_sampling.energy.penalty import BondStructurePenalty, PenalizedEnergy
from adjoint_sampling.energy.registry import build_energy
from adjoint_sampling.problems.molecular.base import MODES
from adjoint_sampling.problems.molecular.cartesian import CartesianMoleculeProblem
from adjoint_sampling.problems.molecular.dataset import DEFAULT_TRAIN_SMILES, prepare_molecules, read_smiles_file
from adjoint_sampling.problems.molecular.torsional import TorsionalMoleculeProblem
from adjoint_sampling.training.config import parse_dataclass
from adjoint_sampling.training.jobs import register_problem

log = logging.getLogger(__name__)

LOCAL_STRUCTURE_RECIPE = "rdkit-etkdgv3+mmff94-opt"
"""How local structures are made (:func:`adjoint_sampling.molecules.torsions.local_structure`)."""


@dataclass
class MolecularProblemParams:
    """The ``problem:`` section of a molecular training job.

    Attributes:
        kind: always ``molecules``.
        mode: ``torsional`` (state = rotatable-bond torsions) or ``cartesian`` (atom positions).
        smiles_file: SMILES list (``count smiles id`` rows or one SMILES per line); default
            ``../shared/data/spice_train.txt``. Ignored when ``smiles`` is given.
        smiles: an inline list of SMILES instead of a file.
        max_molecules: use at most this many usable molecules (``None``: all).
        shuffle_seed: shuffle the list with this seed before taking ``max_molecules``
            (``None``: file order).
        list_entries: use only the first this many entries of the (shuffled) list, usable or not,
            so that the entries past them stay held out whatever the filters drop (the validation
            ensembles start at entry 2000 of the seed-0 shuffle); ``None``: the whole list.
        exclude_smiles_file: a SMILES list whose molecules are left out (compared by RDKit
            canonical SMILES), e.g. the validation ensembles' ``validation.txt`` when training on
            the whole list; ``None``: none.
        max_atoms: skip molecules with more atoms (hydrogens included).
        min_torsions / max_torsions: skip molecules outside these rotatable-bond counts
            (torsional mode needs ``min_torsions >= 1``).
        energy: energy backend name (``mmff``, ``xtb``, ``fairchem``).
        energy_options: keyword arguments of the backend.
        temperature_k: temperature in kelvin.
        samples_per_molecule: systems of one molecule per drawn group (batch composition: a
            batch of ``n`` systems holds ``n / samples_per_molecule`` molecules).
        local_structure_seed: seed of the RDKit local structures (molecule i uses seed + i).
        warm_start_pool: RDKit conformers per molecule for the bridge-matching warm start (and the
            data of a flow-matching job).
        pool_relaxation: ``mmff`` to MMFF94-optimise that pool (ETKDG + MMFF); ``None``: ETKDG only.
        bond_penalty: Cartesian mode: ``BondStructurePenalty`` kwargs (alpha, bond_factor, ...).
    """

    kind: str = "molecules"
    mode: str = "torsional"
    smiles_file: str | None = None
    smiles: list[str] | None = None
    max_molecules: int | None = 256
    shuffle_seed: int | None = 0
    list_entries: int | None = None
    exclude_smiles_file: str | None = None
    max_atoms: int | None = 80
    min_torsions: int = 1
    max_torsions: int | None = 12
    energy: str = "mmff"
    energy_options: dict[str, Any] = field(default_factory=dict)
    temperature_k: float = 300.0
    samples_per_molecule: int = 8
    local_structure_seed: int = 0
    warm_start_pool: int = 16
    pool_relaxation: str | None = None
    bond_penalty: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"config.problem.mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if self.mode == "torsional" and self.min_torsions < 1:
            raise ConfigError("config.problem.min_torsions must be >= 1 in torsional mode")
        if not self.temperature_k > 0:
            raise ConfigError(f"config.problem.temperature_k must be > 0 kelvin, got {self.temperature_k}")
        if self.samples_per_molecule < 1:
            raise ConfigError("config.problem.samples_per_molecule must be >= 1")
        if self.max_molecules is not None and self.max_molecules < 1:
            raise ConfigError("config.problem.max_molecules must be >= 1")
        if self.list_entries is not None and self.list_entries < 1:
            raise ConfigError("config.problem.list_entries must be >= 1")


def energy_from_description(description: dict[str, Any]) -> EnergyModel:
    """The energy a problem trained with (bond penalty included in Cartesian mode), from
    ``describe()`` output as stored in checkpoints."""
    base = build_energy(description["energy"], **dict(description.get("energy_options", {})))
    if description.get("mode") == "cartesian":
        try:
            return PenalizedEnergy(base, BondStructurePenalty(**dict(description.get("bond_penalty", {}))))
        except TypeError as exc:
            raise ConfigError(f"config.problem.bond_penalty: {exc}") from exc
    return base


@register_problem("molecules")
def build_molecular_problem(spec: dict[str, Any]) -> TorsionalMoleculeProblem | CartesianMoleculeProblem:
    """Build the molecular problem of a ``problem:`` section (``ConfigError`` if it is invalid)."""
    params = parse_dataclass(MolecularProblemParams, spec, "config.problem")
    smiles = list(params.smiles) if params.smiles else read_smiles_file(params.smiles_file or DEFAULT_TRAIN_SMILES)
    if params.shuffle_seed is not None:
        random.Random(params.shuffle_seed).shuffle(smiles)
    if params.list_entries is not None:
        smiles = smiles[: params.list_entries]
    if params.exclude_smiles_file is not None:
        excluded = {canonical_smiles(s) for s in read_smiles_file(params.exclude_smiles_file)}
        kept = [s for s in smiles if canonical_smiles(s) not in excluded]
        log.info("left out %d molecules of %s", len(smiles) - len(kept), params.exclude_smiles_file)
        smiles = kept
    description: dict[str, Any] = {
        "energy": params.energy, "energy_options": dict(params.energy_options),
        "elements": list(ELEMENTS), "local_structure": LOCAL_STRUCTURE_RECIPE,
        "max_atoms": params.max_atoms, "bond_penalty": dict(params.bond_penalty), "params": asdict(params),
    }
    energy = energy_from_description({**description, "mode": params.mode})
    # Molecules the energy refuses (say a total charge outside a GNN potential's range) are dropped
    # here, counted by reason, so that no refusal can stop a run half-way.
    records = prepare_molecules(
        smiles, seed=params.local_structure_seed, max_atoms=params.max_atoms,
        min_torsions=params.min_torsions if params.mode == "torsional" else 0,
        max_torsions=params.max_torsions, limit=params.max_molecules, accept=energy.check_system,
    )
    if not records:
        raise ConfigError("config.problem: no usable molecule in the SMILES list")
    description["num_molecules"] = len(records)
    cls = TorsionalMoleculeProblem if params.mode == "torsional" else CartesianMoleculeProblem
    return cls(records, energy, params.temperature_k, samples_per_molecule=params.samples_per_molecule,
               description=description, warm_start_pool=params.warm_start_pool,
               pool_relaxation=params.pool_relaxation)
