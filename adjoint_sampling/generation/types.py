"""Result types shared by the sampler, the RDKit baselines, the CLI, the service and the benchmarks.

Positions are in angstrom, energies in kcal/mol (see :mod:`energy.units`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from adjoint_sampling.chemistry.parsing import ParsedMolecule
from adjoint_sampling.core.errors import InvalidOptionError

__all__ = ["RELAX_METHODS", "Conformer", "ConformerGenerator", "ConformerSet", "GenerationRequest", "RelaxMethod"]

RelaxMethod = Literal["none", "mmff", "xtb", "gnn"]
RELAX_METHODS: tuple[str, ...] = ("none", "mmff", "xtb", "gnn")
"""``mmff``: RDKit's MMFF94 optimiser; ``xtb``: GFN2-xTB (tblite); ``gnn``: our GNN potential distilled
from GFN2-xTB (``models/shipped/energy.pt``, or ``AS_ENERGY_MODEL``); the last two by batched L-BFGS."""


@dataclass(frozen=True)
class GenerationRequest:
    """What a caller asks of a conformer generator.

    Attributes:
        smiles: the input molecule.
        num_conformers: how many conformers to return (>= 1).
        seed: random seed; the same request gives the same conformers.
        relax: local relaxation applied to every conformer (one of :data:`RELAX_METHODS`); its
            backend also gives the reported energies.
        charge: total charge; ``None`` takes it from the SMILES formal charges. A value that
            disagrees with the SMILES is refused, never silently replaced.
        multiplicity: spin multiplicity; ``None`` takes it from the SMILES radicals (1 if none).
        prune_rms: if set, drop conformers within this heavy-atom RMSD (angstrom) of a kept one.
        relax_steps: most optimiser iterations of the relaxation (``None``: the backend's default,
            ``adjoint_sampling.energy.relax.DEFAULT_MAX_STEPS``); fewer is faster and leaves conformers
            less relaxed. Only with ``relax`` other than ``"none"``.
        energy_window: if set, keep only conformers within this many kcal/mol of the lowest one
            returned (needs energies: a relaxation, or a generator that reports them).
        sort: order the conformers by energy, lowest first (those without an energy last; with no
            energies at all the order stays and ``ConformerSet.sorted_by_energy`` is false).
        strip_fragments: keep the largest organic fragment of a multi-fragment SMILES (salts,
            solvents) and report the others; without it several fragments are an error.
        max_draw_multiple: conformers that fail the structure check (or the relaxation) are drawn
            again, up to this many raw draws per requested conformer in all; 1 draws once.
    """

    smiles: str
    num_conformers: int = 10
    seed: int = 0
    relax: RelaxMethod = "none"
    charge: int | None = None
    multiplicity: int | None = None
    prune_rms: float | None = None
    relax_steps: int | None = None
    energy_window: float | None = None
    sort: bool = False
    strip_fragments: bool = False
    max_draw_multiple: int = 4

    def validate(self, max_num_conformers: int | None = None) -> None:
        """Check the options against the one set of rules every front end uses.

        Args:
            max_num_conformers: a front end's cap on ``num_conformers`` (``None``: no cap).

        Raises:
            InvalidOptionError: naming the first invalid option, its reason and the rule (the
                molecule itself is checked by the parser).
        """
        if self.num_conformers < 1:
            raise InvalidOptionError("num_conformers", "out_of_range", f"must be >= 1, got {self.num_conformers}")
        if max_num_conformers is not None and self.num_conformers > max_num_conformers:
            raise InvalidOptionError(
                "num_conformers", "above_cap", f"must not exceed the cap of {max_num_conformers}, got {self.num_conformers}"
            )
        if self.relax not in RELAX_METHODS:
            raise InvalidOptionError(
                "relax", "unknown_choice", f"must be one of {', '.join(RELAX_METHODS)}, got {self.relax!r}"
            )
        if self.prune_rms is not None and not self.prune_rms > 0:
            raise InvalidOptionError("prune_rms", "out_of_range", f"must be > 0 angstrom, got {self.prune_rms}")
        if self.energy_window is not None and not self.energy_window > 0:
            raise InvalidOptionError("energy_window", "out_of_range", f"must be > 0 kcal/mol, got {self.energy_window}")
        if self.max_draw_multiple < 1:
            raise InvalidOptionError("max_draw_multiple", "out_of_range", f"must be >= 1, got {self.max_draw_multiple}")
        if self.relax_steps is not None:
            if self.relax == "none":
                raise InvalidOptionError(
                    "relax_steps", "needs_relax", "needs a relaxation (relax is 'none'); set relax to mmff, xtb or gnn"
                )
            if self.relax_steps < 1:
                raise InvalidOptionError("relax_steps", "out_of_range", f"must be >= 1, got {self.relax_steps}")

    def relax_options(self) -> dict[str, int]:
        """Keyword arguments of :func:`adjoint_sampling.relax.relax` this request asks for."""
        return {} if self.relax_steps is None else {"max_steps": int(self.relax_steps)}


@dataclass
class Conformer:
    """One conformer.

    Attributes:
        positions: ``(N, 3)`` float array in angstrom, atom order of ``ConformerSet.mol``.
        energy: energy in kcal/mol under ``ConformerSet.energy_model`` (``None`` if not computed).
        index: position of this conformer in the generated sequence (before any dropping).
    """

    positions: np.ndarray
    energy: float | None
    index: int


@dataclass
class ConformerSet:
    """The conformers of one molecule plus what a user needs to trust them.

    Attributes:
        smiles: the input SMILES as given.
        mol: RDKit molecule with explicit hydrogens (no conformers attached).
        conformers: kept conformers (each kept one has passed the connectivity/stereo check).
        num_requested: conformers asked for.
        num_generated: raw samples drawn before checks and pruning (more than ``num_requested``
            where failed draws were drawn again).
        dropped: counts of dropped samples by reason (e.g. ``{"stereo_changed": 2}``).
        num_reflected: Cartesian samples that were fully mirrored and reflected back.
        energy_model: name of the backend that gave ``Conformer.energy`` (e.g. ``"mmff"``).
        relax: relaxation applied.
        model_name / model_version: the generator that produced them.
        seed: the seed used.
        timings: seconds spent per phase (``"sample"``, ``"relax"``, ``"check"``, ``"total"``).
        removed_fragments: SMILES of the fragments stripped from the input (counter-ions, solvents).
        sorted_by_energy: whether ``conformers`` are ordered by energy (lowest first).
        warnings: notes on how far the results can be trusted, each ``"code: sentence"`` (e.g.
            ``gnn_extrapolation``: the molecule is larger than any in the GNN energy model's training data).
    """

    smiles: str
    mol: object
    conformers: list[Conformer]
    num_requested: int
    num_generated: int
    dropped: dict[str, int] = field(default_factory=dict)
    num_reflected: int = 0
    energy_model: str | None = None
    relax: str = "none"
    model_name: str = ""
    model_version: str = ""
    seed: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    removed_fragments: tuple[str, ...] = ()
    sorted_by_energy: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def num_dropped(self) -> int:
        return int(sum(self.dropped.values()))


@runtime_checkable
class ConformerGenerator(Protocol):
    """Anything that turns a :class:`GenerationRequest` into a :class:`ConformerSet`."""

    name: str
    version: str

    def generate(self, request: GenerationRequest, molecule: ParsedMolecule | None = None) -> ConformerSet:
        """Generate conformers (``molecule``: the request's molecule if already parsed); raises
        ``InvalidMoleculeError`` for molecules it cannot handle, ``InvalidOptionError`` for bad options."""
        ...
