"""`adjoint-sampling label CONFIG.yaml [--shard i/n] [--workers K] [--out DIR] [--card]`.

Labels conformers of the config's molecules with GFN2-xTB energies and forces
(:mod:`adjoint_sampling.labelling`). Rerunning the same command resumes; ``--shard i/n`` (0-based)
labels every n-th chunk of molecules, so n machines can share the list; ``--card`` writes
``DATA_CARD.md`` and ``data_card.json`` from the finished outputs instead of labelling.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML labelling config (e.g. configs/labelling/spice_xtb.yaml)")
    parser.add_argument("--shard", default=None, help="i/n: label shard i (0-based) of n (default 0/1)")
    parser.add_argument("--workers", type=int, default=1, help="processes (one xTB calculation each)")
    parser.add_argument("--out", default=None, help="output folder (default: out_dir of the config)")
    parser.add_argument("--card", action="store_true", help="only write the data card of the outputs")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per calculation: parallelism is --workers
    from adjoint_sampling.labelling.config import load_label_config
    from adjoint_sampling.labelling.molecules import parse_shard

    config = load_label_config(args.config)
    shard = parse_shard(args.shard)
    out = args.out or config.out_dir
    if args.card:
        from adjoint_sampling.labelling.card import write_data_card

        card = write_data_card(out)
        print(f"wrote {out}/DATA_CARD.md: {card['molecules']['labelled']} molecules, {card['frames']['total']} frames")
        return 0
    from adjoint_sampling.labelling.job import run_label_job

    summary = run_label_job(config, out, shard=shard, workers=args.workers)
    print(
        f"shard {shard[0]}/{shard[1]}: {summary.molecules} molecules, {summary.already_done} done before, "
        f"{summary.labelled} labelled now ({summary.frames} frames, {summary.cpu_s:.1f} CPU s), "
        f"{summary.chunks_packed} chunk files finished in {out}"
    )
    return 0
