"""Validate API requests and turn generator output into API results (no HTTP, no threads here)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from adjoint_sampling.chemistry.checks import REASONS as CHECK_REASONS
from adjoint_sampling.chemistry.parsing import ParsedMolecule, parse_smiles
from adjoint_sampling.core.errors import AdjointSamplingError, InvalidMoleculeError, InvalidOptionError
from adjoint_sampling.generation.formats import conformers_to_json, conformers_to_sdf, conformers_to_xyz
from adjoint_sampling.generation.types import ConformerGenerator, ConformerSet, GenerationRequest
from adjoint_sampling.service.errors import ApiError
from adjoint_sampling.service.schemas import GenerationOptions, MoleculeInput
from adjoint_sampling.service.settings import ServiceSettings

log = logging.getLogger(__name__)


_MOLECULE_FIELDS = {"charge_mismatch": "charge", "multiplicity_mismatch": "multiplicity", "unsupported_charge": "charge"}
_OPTION_FIELDS = {"num_conformers": "n_conformers"}
"""API field of each :class:`GenerationRequest` option whose name differs."""


def validate_options(options: GenerationOptions, settings: ServiceSettings) -> None:
    """The request rules of :meth:`GenerationRequest.validate`, with the service's cap (422 naming the field)."""
    try:
        generation_request(MoleculeInput(smiles=""), options).validate(max_num_conformers=settings.max_conformers)
    except InvalidOptionError as exc:
        raise option_error(exc) from None


def option_error(exc: InvalidOptionError, field_prefix: str = "") -> ApiError:
    """The 422 for an option the request rules or the generator refused, naming the API field."""
    field = _OPTION_FIELDS.get(exc.field, exc.field)
    return ApiError(422, f"{field_prefix}{field}", exc.reason, f"{field} {exc.detail}")


def validate_molecule(
    molecule: MoleculeInput, settings: ServiceSettings, field_prefix: str = "", strip_fragments: bool = True
) -> ParsedMolecule:
    """Parse and check one molecule against the service limits.

    Raises:
        ApiError: 422 with ``field`` (``smiles``, ``charge`` or ``multiplicity``, prefixed by
            ``field_prefix``) and the :class:`InvalidMoleculeError` reason.
    """
    smiles_field = f"{field_prefix}smiles"
    if len(molecule.smiles) > settings.max_smiles_length:
        raise ApiError(
            422,
            smiles_field,
            "too_long",
            f"{smiles_field}: {len(molecule.smiles)} characters; the limit is {settings.max_smiles_length}",
        )
    try:
        return parse_smiles(
            molecule.smiles, charge=molecule.charge, multiplicity=molecule.multiplicity, max_atoms=settings.max_atoms,
            strip_fragments=strip_fragments,
        )
    except InvalidMoleculeError as exc:
        raise molecule_error(exc, field_prefix, molecule) from None


def molecule_error(exc: InvalidMoleculeError, field_prefix: str, molecule: MoleculeInput) -> ApiError:
    """The 422 for a molecule the parser or the generator refused."""
    name = _MOLECULE_FIELDS.get(exc.reason, "smiles")
    field = f"{field_prefix}{name}"
    return ApiError(422, field, exc.reason, f"{field}: {exc.detail}")


def generation_request(molecule: MoleculeInput, options: GenerationOptions) -> GenerationRequest:
    return GenerationRequest(
        smiles=molecule.smiles,
        num_conformers=options.n_conformers,
        seed=options.seed,
        relax=options.relax,
        charge=molecule.charge,
        multiplicity=molecule.multiplicity,
        prune_rms=options.prune_rms,
        relax_steps=options.relax_steps,
        energy_window=options.energy_window,
        sort=options.sort,
        strip_fragments=options.strip_fragments,
    )


def generate(
    generator: ConformerGenerator,
    molecule: MoleculeInput,
    options: GenerationOptions,
    field_prefix: str = "",
    parsed: ParsedMolecule | None = None,
) -> dict[str, Any]:
    """Run the generator for one validated molecule and build a ``ConformerResult`` dict.

    ``parsed`` is the molecule :func:`validate_molecule` returned, so it is not parsed twice.
    CPU-heavy: call it from a worker thread.

    Raises:
        ApiError: 422 for a molecule the generator refuses, 500 for a failed energy backend.
    """
    start = time.perf_counter()
    try:
        cs = generator.generate(generation_request(molecule, options), parsed)
    except InvalidMoleculeError as exc:
        raise molecule_error(exc, field_prefix, molecule) from None
    except InvalidOptionError as exc:
        raise option_error(exc, field_prefix) from None
    except AdjointSamplingError as exc:
        log.error("generation failed for %r: %s", molecule.smiles, exc)
        raise ApiError(500, None, "generation_failed", f"conformer generation failed: {exc}") from None
    return conformer_result(cs, options.format, time.perf_counter() - start)


def conformer_result(cs: ConformerSet, output_format: str, service_seconds: float) -> dict[str, Any]:
    """The ``ConformerResult`` of a generated set in ``output_format`` (json / sdf / xyz)."""
    result = conformers_to_json(cs)
    failed = {str(k): int(v) for k, v in cs.dropped.items() if k in CHECK_REASONS}
    result["check"] = {
        "reasons": list(CHECK_REASONS),
        "num_failed": sum(failed.values()),
        "failed_by_reason": failed,
        "all_returned_passed": True,
    }
    result["format"] = output_format
    if output_format == "json":
        result["content"] = None
    else:
        writer: Callable[[ConformerSet], str] = conformers_to_sdf if output_format == "sdf" else conformers_to_xyz
        result["content"] = writer(cs)
        result["conformers"] = [{k: v for k, v in c.items() if k != "positions"} for c in result["conformers"]]
    result["timings"]["service_total"] = float(service_seconds)
    return result


def process_molecule(
    generator: ConformerGenerator,
    index: int,
    molecule: MoleculeInput,
    options: GenerationOptions,
    settings: ServiceSettings,
) -> dict[str, Any]:
    """One molecule of a batch or job as a ``MoleculeOutcome`` dict: never raises for bad input."""
    prefix = f"molecules.{index}."
    try:
        parsed = validate_molecule(molecule, settings, prefix, options.strip_fragments)
        result = generate(generator, molecule, options, prefix, parsed)
    except ApiError as exc:
        return failed_outcome(index, molecule, exc)
    return {"index": index, "smiles": molecule.smiles, "status": "ok", "error": None, "result": result}


def failed_outcome(index: int, molecule: MoleculeInput, error: ApiError) -> dict[str, Any]:
    return {
        "index": index,
        "smiles": molecule.smiles,
        "status": "failed",
        "error": error.detail().model_dump(),
        "result": None,
    }


def batch_result(outcomes: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """A ``BatchResult`` dict from per-molecule outcomes (in input order)."""
    outcomes = sorted(outcomes, key=lambda o: o["index"])
    num_ok = sum(1 for o in outcomes if o["status"] == "ok")
    return {
        "num_ok": num_ok,
        "num_failed": len(outcomes) - num_ok,
        "molecules": outcomes,
        "timings": {"service_total": float(seconds)},
    }
