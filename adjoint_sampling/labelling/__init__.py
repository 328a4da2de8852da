"""The labelled-data job: conformers of SPICE training molecules from several sources (ETKDG, MMFF94,
random torsions, the trained sampler, thermal displacements, GFN2-xTB relaxation paths) with GFN2-xTB
energies and forces, written as sharded gzip extended XYZ with a data card."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "LabelConfig": ".config",
        "load_label_config": ".config",
        "SOURCES": ".config",
        "SPLITS": ".config",
        "LabelledFrame": ".extxyz",
        "read_frames": ".extxyz",
        "write_frames_gz": ".extxyz",
        "read_pack": ".pack",
        "write_pack": ".pack",
        "molecule_entries": ".molecules",
        "parse_shard": ".molecules",
        "label_molecule": ".labeller",
        "run_label_job": ".job",
        "JobSummary": ".job",
        "build_data_card": ".card",
        "write_data_card": ".card",
    },
)
