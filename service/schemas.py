"""Request and response bodies of the REST API (pydantic, strict: no silent type coercion).

Positions are in angstrom, energies in kcal/mol, times in seconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from adjoint_sampling.generation.types import RelaxMethod

OutputFormat = Literal["sdf", "xyz", "json"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
MoleculeStatus = Literal["ok", "failed"]

MAX_SEED = 2**31 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class MoleculeInput(_Strict):
    """One molecule: SMILES plus optional total charge and spin multiplicity (checked against it)."""

    smiles: str = Field(
        description="SMILES of one molecule (length and atom count are capped)", examples=["CC(=O)Nc1ccc(O)cc1"]
    )
    charge: int | None = Field(None, ge=-20, le=20, description="total charge; default: from the SMILES")
    multiplicity: int | None = Field(None, ge=1, le=20, description="2S+1; default: from the SMILES")


class GenerationOptions(_Strict):
    """How to generate conformers (shared by single, batch and job requests)."""

    n_conformers: int = Field(
        10, ge=1, description="conformers per molecule (capped by AS_MAX_CONFORMERS)", examples=[3]
    )
    seed: int = Field(0, ge=0, le=MAX_SEED, description="random seed: same request, same conformers")
    relax: RelaxMethod = Field(
        "none",
        description="local relaxation of every conformer, whose backend also gives the energies: mmff (MMFF94), "
        "xtb (GFN2-xTB) or gnn (our GNN potential distilled from GFN2-xTB; refuses elements and charges outside "
        "its training data with 422 unsupported_element / unsupported_charge)",
        examples=["mmff"],
    )
    prune_rms: float | None = Field(
        None, gt=0, le=10, description="drop conformers within this heavy-atom RMSD (angstrom) of a kept one"
    )
    relax_steps: int | None = Field(
        None, ge=1, le=10000, description="most optimiser iterations of the relaxation (default 500); needs relax",
        examples=[200],
    )
    energy_window: float | None = Field(
        None, gt=0, le=1000, description="keep conformers within this many kcal/mol of the lowest returned (needs energies)",
        examples=[10.0],
    )
    sort: bool = Field(False, description="order the conformers by energy, lowest first (no effect without energies)")
    strip_fragments: bool = Field(
        True, description="keep the largest organic fragment and strip counter-ions / solvents (reported); "
        "false: several fragments are an error",
    )
    format: OutputFormat = Field("json", description="json: positions inline; sdf / xyz: a file in `content`")


class ConformerRequest(MoleculeInput, GenerationOptions):
    """``POST /v1/conformers``: one molecule."""


class BatchRequest(GenerationOptions):
    """``POST /v1/conformers/batch`` and ``POST /v1/jobs``: several molecules, same options."""

    molecules: list[MoleculeInput] = Field(min_length=1, description="molecules (count capped)")


class ErrorDetail(BaseModel):
    status: int
    field: str | None = Field(description="the request field at fault (dotted path), or null")
    reason: str = Field(description="machine-readable code, e.g. invalid_smiles, above_cap, timeout")
    message: str


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx response."""

    error: ErrorDetail


class ModelInfo(BaseModel):
    name: str
    version: str


class CheckResult(BaseModel):
    """The connectivity/stereochemistry check of the raw samples against the input molecule."""

    reasons: list[str] = Field(description="what the check looks for (clash, connectivity, stereo)")
    num_failed: int = Field(description="samples dropped because they failed the check")
    failed_by_reason: dict[str, int]
    all_returned_passed: bool = Field(description="every returned conformer keeps the input's bonds and stereo")


class ConformerOut(BaseModel):
    index: int = Field(description="position in the generated sequence (before drops)")
    energy_kcal_mol: float | None
    positions: list[list[float]] | None = Field(None, description="(N, 3) angstrom; json format only")


class ConformerResult(BaseModel):
    """Conformers of one molecule with everything needed to trust them."""

    smiles: str
    canonical_smiles: str
    charge: int
    multiplicity: int
    elements: list[str]
    bonds: list[tuple[int, int, float]] = Field(description="[i, j, bond order]")
    model: ModelInfo
    energy_model: str | None
    relax: str
    seed: int
    num_requested: int
    num_generated: int = Field(description="raw samples drawn (more than requested where failed ones were replaced)")
    num_returned: int
    num_dropped: int
    dropped: dict[str, int] = Field(
        description="dropped samples by reason (structure check, relax_failed, pruned, energy_window, surplus: valid "
        "draws beyond n_conformers when failed draws were replaced, not_selected: relaxed draws left out by a model "
        "that relaxes more draws than asked for and keeps the lowest-energy distinct ones)"
    )
    num_reflected: int
    removed_fragments: list[str] = Field(description="SMILES of the stripped counter-ions / solvents")
    sorted_by_energy: bool
    warnings: list[str] = Field(
        default_factory=list,
        description="`code: sentence` notes on how far to trust the result, e.g. gnn_extrapolation: the molecule is "
        "larger than any in the GNN energy model's training data (relax gnn still runs)",
    )
    check: CheckResult
    timings: dict[str, float] = Field(description="seconds per phase; `service_total` includes queueing")
    format: OutputFormat
    conformers: list[ConformerOut]
    content: str | None = Field(None, description="the SDF or XYZ file (sdf / xyz formats)")


class MoleculeOutcome(BaseModel):
    """One molecule of a batch: ``ok`` with a result, or ``failed`` with the reason."""

    index: int
    smiles: str
    status: MoleculeStatus
    error: ErrorDetail | None = None
    result: ConformerResult | None = None


class BatchResult(BaseModel):
    num_ok: int
    num_failed: int
    molecules: list[MoleculeOutcome]
    timings: dict[str, float]


class JobProgress(BaseModel):
    molecules_done: int
    molecules_total: int


class JobInfo(BaseModel):
    id: str
    status: JobStatus
    progress: JobProgress
    attempts: int = Field(description="times the job was started (restarts re-run interrupted jobs)")
    created_at: float = Field(description="unix time")
    started_at: float | None
    finished_at: float | None
    error: ErrorDetail | None = None
    result_url: str | None = None


class ModelLimits(BaseModel):
    """The request limits of the service (its settings)."""

    max_conformers: int
    max_smiles_length: int
    max_atoms: int
    max_batch_molecules: int
    max_job_molecules: int
    request_timeout_s: float = Field(description="time limit of synchronous requests (seconds)")


class ServedModel(ModelInfo):
    """The model the service runs."""

    source: str = Field(description="the model spec it was loaded from (`in-process` when embedded)")
    ready: bool = Field(description="loaded and warmed up")
    limits: ModelLimits


class ModelsResponse(BaseModel):
    models: list[ServedModel]


class HealthResponse(BaseModel):
    status: str
