"""The methods a conformer benchmark run compares, and how each one is built.

A method is ``GENERATOR[+RELAX[@STEPS]]``: a :class:`~adjoint_sampling.conformers.ConformerGenerator`
from :data:`GENERATORS` and the relaxation it is asked for in its
:class:`~adjoint_sampling.conformers.GenerationRequest` (``"etkdg"``, ``"etkdg+mmff"``,
``"sampler+xtb"``, ``"etkdg+gnn"`` / ``"sampler+gnn"``: our GNN potential, ``"sampler+mmff@50"``: at most
50 optimiser iterations, ...; relaxations are :data:`~adjoint_sampling.generation.types.RELAX_METHODS`).
Adding a generator is one entry in :data:`GENERATORS`. More trained models join a run under names of
their own (``--model flow=runs/flow/model.pt`` makes ``flow``, ``flow+mmff``, ...): each is a
``sampler`` on its checkpoint, so several models are compared in one run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.generation.types import RELAX_METHODS, ConformerGenerator

__all__ = [
    "DEFAULT_METHODS",
    "GENERATORS",
    "MethodOptions",
    "MethodSpec",
    "build_generator",
    "parse_methods",
    "parse_models",
]


@dataclass(frozen=True)
class MethodOptions:
    """What generator factories may need.

    Attributes:
        checkpoint: trained sampler checkpoint (required by ``sampler``).
        num_threads: threads a generator may use inside one molecule (parallelism is over molecules).
        sde_steps: Euler-Maruyama steps of the sampler (``None``: the checkpoint's).
        sampler_energy: energy backend of the energies the sampler reports for unrelaxed
            conformers (``None``: the checkpoint's; e.g. ``"mmff"`` for a model trained on xTB,
            whose xTB energies would dominate the timing).
        energy_model: GNN energy checkpoint of ``+gnn`` relaxations (``None``: ``AS_ENERGY_MODEL``,
            else the shipped ``models/shipped/energy.pt``).
    """

    checkpoint: Path | None = None
    num_threads: int = 1
    sde_steps: int | None = None
    sampler_energy: str | None = None
    energy_model: Path | None = None


def _etkdg(options: MethodOptions) -> ConformerGenerator:
    """ETKDG that reuses its embedding across relax variants (its cost is charged to each)."""
    from adjoint_sampling.generation.etkdg import EtkdgGenerator

    generator = EtkdgGenerator(num_threads=options.num_threads, reuse_embedding=True)
    generator.relax_energy_path = options.energy_model
    return generator


def _sampler(options: MethodOptions) -> ConformerGenerator:
    if options.checkpoint is None:
        raise ConfigError("method 'sampler' needs --checkpoint PATH")
    from adjoint_sampling.energy.registry import build_energy
    from adjoint_sampling.generation.sampler import Sampler

    energy = None if options.sampler_energy is None else build_energy(options.sampler_energy)
    # Raw samples are reused across relax variants (their cost is charged to each), as for ETKDG.
    generator = Sampler.from_checkpoint(options.checkpoint, energy, sde_steps=options.sde_steps, reuse_samples=True)
    generator.relax_energy_path = options.energy_model
    return generator


@dataclass(frozen=True)
class GeneratorEntry:
    """A registered generator: its factory and whether it needs a checkpoint."""

    factory: Callable[[MethodOptions], ConformerGenerator]
    needs_checkpoint: bool
    description: str


GENERATORS: dict[str, GeneratorEntry] = {
    "etkdg": GeneratorEntry(_etkdg, False, "RDKit ETKDGv3 (seeded)"),
    "sampler": GeneratorEntry(_sampler, True, "trained Adjoint Sampling sampler (--checkpoint)"),
}

DEFAULT_METHODS: tuple[str, ...] = ("etkdg", "etkdg+mmff")
"""Compared when ``--methods`` is not given (plus ``sampler``, ``sampler+mmff`` with a checkpoint)."""


@dataclass(frozen=True)
class MethodSpec:
    """One compared method, e.g. ``MethodSpec("etkdg+mmff", "etkdg", "mmff")``.

    ``relax_steps``: most optimiser iterations of the relaxation (``None``: the default);
    ``checkpoint``: a named model's checkpoint (the generator is then a ``sampler`` on it).
    """

    name: str
    generator: str
    relax: str
    relax_steps: int | None = None
    checkpoint: Path | None = None

    @property
    def registered_generator(self) -> str:
        """The :data:`GENERATORS` entry that builds this method's generator."""
        return "sampler" if self.checkpoint is not None else self.generator


def parse_models(items: list[str] | None) -> dict[str, Path]:
    """``["NAME=PATH", ...]`` -> ``{name: path}``: trained models compared under their own names
    (ConfigError for a malformed item, a name taken by a generator or given twice, a missing file)."""
    models: dict[str, Path] = {}
    for item in items or []:
        name, eq, path = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier() or not path:
            raise ConfigError(f"--model {item!r}: expected NAME=PATH with NAME a plain word")
        if name in GENERATORS or name in models:
            raise ConfigError(f"--model {item!r}: the name {name!r} is already taken")
        if not Path(path).is_file():
            raise ConfigError(f"--model {item!r}: checkpoint {path} does not exist")
        models[name] = Path(path)
    return models


def parse_method(name: str, models: dict[str, Path] | None = None) -> MethodSpec:
    """``"GENERATOR"``, ``"GENERATOR+RELAX"`` or ``"GENERATOR+RELAX@STEPS"`` -> :class:`MethodSpec`
    (ConfigError if unknown); GENERATOR may be a name of ``models``."""
    models = models or {}
    text = name.strip()
    generator, _, relax = text.partition("+")
    relax, at, steps_text = relax.partition("@")
    relax_steps: int | None = None
    if at:
        if not steps_text.isdigit() or int(steps_text) < 1:
            raise ConfigError(f"method {text!r}: relaxation steps after '@' must be a positive integer, got {steps_text!r}")
        relax_steps = int(steps_text)
    relax = relax or "none"
    if generator not in GENERATORS and generator not in models:
        raise ConfigError(f"unknown method {text!r}: generator {generator!r} is not one of "
                          f"{', '.join([*GENERATORS, *models])}")
    if relax not in RELAX_METHODS or (relax == "none" and "+" in text):
        raise ConfigError(
            f"unknown method {text!r}: relaxation {relax!r} is not one of {', '.join(r for r in RELAX_METHODS if r != 'none')}"
        )
    canonical = generator if relax == "none" else f"{generator}+{relax}"
    if relax_steps is not None:
        canonical += f"@{relax_steps}"
    return MethodSpec(name=canonical, generator=generator, relax=relax, relax_steps=relax_steps,
                      checkpoint=models.get(generator))


def parse_methods(text: str | None, checkpoint: Path | None, models: dict[str, Path] | None = None) -> list[MethodSpec]:
    """Parse a comma-separated method list.

    ``None`` gives :data:`DEFAULT_METHODS`, plus ``sampler`` and ``sampler+mmff`` when a
    checkpoint is given.

    Raises:
        ConfigError: unknown or duplicate methods, or a checkpoint-based method without a checkpoint.
    """
    if text is None:
        names = list(DEFAULT_METHODS) + (["sampler", "sampler+mmff"] if checkpoint is not None else [])
    else:
        names = [n for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("no methods given")
    specs = [parse_method(n, models) for n in names]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"method {spec.name!r} is listed twice")
        seen.add(spec.name)
        if spec.checkpoint is None and GENERATORS[spec.generator].needs_checkpoint and checkpoint is None:
            raise ConfigError(f"method {spec.name!r} needs --checkpoint PATH")
    return specs


def build_generator(generator: str, options: MethodOptions) -> ConformerGenerator:
    """Construct the registered generator ``generator``."""
    if generator not in GENERATORS:
        raise ConfigError(f"unknown generator {generator!r}; choose one of {', '.join(GENERATORS)}")
    return GENERATORS[generator].factory(options)
