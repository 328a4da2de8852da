"""Conformer generation for users: request and result types, the one pipeline (parse, generate,
check, relax, recheck, prune, energies), the trained sampler, the ETKDG baseline, output formats and
model loading (the shipped sampler, and the shipped GNN energy model of ``relax="gnn"``)."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "GenerationRequest": ".types",
        "Conformer": ".types",
        "ConformerSet": ".types",
        "ConformerGenerator": ".types",
        "RELAX_METHODS": ".types",
        "Sampler": ".sampler",
        "EtkdgGenerator": ".etkdg",
        "conformers_to_sdf": ".formats",
        "conformers_to_xyz": ".formats",
        "conformers_to_json": ".formats",
        "generate": ".api",
        "load_generator": ".loading",
        "resolve_model_spec": ".loading",
        "load_energy_model": ".shipped",
        "resolve_energy_model_path": ".shipped",
        "SHIPPED_ENERGY_MODEL_PATH": ".shipped",
    },
)
