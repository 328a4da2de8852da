"""Bulk conformer generation for SMILES libraries: lazy batches, sharded gzip SDF with a per-molecule
manifest, resumable; run in-process or on Ray actors (``adjoint-sampling sample --engine ray``).
A sibling of ``service`` and ``labelling``: it uses ``generation`` and below."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "LibraryEntry": ".library",
        "Batch": ".library",
        "iter_library": ".library",
        "count_library": ".library",
        "iter_batches": ".library",
        "ManifestRow": ".worker",
        "ShardResult": ".worker",
        "BatchWorker": ".worker",
        "ShardStore": ".shards",
        "BulkJob": ".runner",
        "BulkSummary": ".runner",
        "LocalExecutor": ".runner",
        "run_bulk": ".runner",
        "RayExecutor": ".ray_engine",
        "import_ray": ".ray_engine",
    },
)
