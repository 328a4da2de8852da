"""Bounded load test of the conformer service on loopback.

Sends ``--requests`` ``POST /v1/conformers`` requests, ``--concurrency`` at a time, cycling over a
few drug-like SMILES, to a server it starts itself on 127.0.0.1 (with ``AS_MAX_CONCURRENCY`` equal
to the load concurrency, so a correct server answers every request) or to ``--url`` (loopback
only). Prints and writes (JSON) throughput, latency percentiles and every non-200 by status.

    python -m adjoint_sampling.benchmarks.service_load --requests 500 --concurrency 8 --output out/service_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

from adjoint_sampling.core.cpu import available_cores
from adjoint_sampling.generation.types import RELAX_METHODS
from adjoint_sampling.service.testing import start_server

log = logging.getLogger(__name__)

SMILES: tuple[str, ...] = (
    "CC(=O)Nc1ccc(O)cc1",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "COc1ccc2[nH]cc(CCNC(C)=O)c2c1",
    "CN1CCC[C@H]1c1cccnc1",
    "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O",
)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m adjoint_sampling.benchmarks.service_load", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="total requests (bounded)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--n-conformers", type=int, default=10)
    parser.add_argument("--relax", choices=list(RELAX_METHODS), default="mmff")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after this long")
    parser.add_argument("--model", default="models/shipped/default.pt",
                        help="AS_MODEL of the started server: a checkpoint path or 'etkdg' (default: the shipped model)")
    parser.add_argument("--workers", type=int, help="AS_WORKERS of the started server (default: usable cores)")
    parser.add_argument("--url", help="an already running server on loopback (default: start one)")
    parser.add_argument("--output", type=Path, default=Path("out/service_load.json"))
    return parser


async def run_load(
    base_url: str, requests: int, concurrency: int, n_conformers: int, relax: str, max_seconds: float
) -> dict[str, object]:
    """Send the requests; returns the summary (latencies in seconds)."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    conformers = 0
    deadline = time.monotonic() + max_seconds
    next_index = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index, conformers
        while next_index < requests and time.monotonic() < deadline:
            index = next_index
            next_index += 1
            body = {"smiles": SMILES[index % len(SMILES)], "n_conformers": n_conformers, "relax": relax, "seed": index}
            start = time.perf_counter()
            try:
                response = await client.post("/v1/conformers", json=body)
            except httpx.HTTPError as exc:
                statuses[f"transport:{type(exc).__name__}"] += 1
                continue
            latencies.append(time.perf_counter() - start)
            statuses[str(response.status_code)] += 1
            if response.status_code == 200:
                conformers += int(response.json()["num_returned"])

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    lat = np.array(latencies) if latencies else np.array([np.nan])
    sent = sum(statuses.values())
    return {
        "requests_sent": sent,
        "ok": statuses.get("200", 0),
        "errors": sent - statuses.get("200", 0),
        "statuses": dict(statuses),
        "wall_s": wall,
        "throughput_rps": sent / wall if wall > 0 else float("nan"),
        "conformers_per_s": conformers / wall if wall > 0 else float("nan"),
        "latency_p50_s": float(np.percentile(lat, 50)),
        "latency_p95_s": float(np.percentile(lat, 95)),
        "latency_p99_s": float(np.percentile(lat, 99)),
        "latency_max_s": float(np.max(lat)),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.requests < 1 or args.concurrency < 1:
        print("error: --requests and --concurrency must be >= 1", file=sys.stderr)
        return 2
    server = None
    if args.url:
        if urlparse(args.url).hostname not in LOOPBACK_HOSTS:
            print(f"error: --url must be on loopback ({', '.join(LOOPBACK_HOSTS)})", file=sys.stderr)
            return 2
        base_url = args.url.rstrip("/")
    else:
        workdir = Path(tempfile.mkdtemp(prefix="as-load-"))
        settings = {"AS_MODEL": args.model, "AS_MAX_CONCURRENCY": str(args.concurrency), "AS_MAX_CONFORMERS": "100"}
        settings["AS_WORKERS"] = str(available_cores() if args.workers is None else args.workers)
        server = start_server(workdir, settings)
        base_url = server.base_url
    try:
        model = httpx.get(f"{base_url}/v1/models", timeout=30).json()["models"][0]
        summary = asyncio.run(
            run_load(base_url, args.requests, args.concurrency, args.n_conformers, args.relax, args.max_seconds)
        )
    finally:
        if server is not None:
            server.stop()
    summary.update(
        {
            "command": "python -m adjoint_sampling.benchmarks.service_load " + " ".join(argv if argv is not None else sys.argv[1:]),
            "concurrency": args.concurrency,
            "workers": args.workers,
            "n_conformers": args.n_conformers,
            "relax": args.relax,
            "model": f"{model['name']} {model['version']}",
            "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        }
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{summary['requests_sent']} requests, concurrency {args.concurrency}: {summary['ok']} ok, "
        f"{summary['errors']} errors {summary['statuses']}\n"
        f"throughput {summary['throughput_rps']:.1f} req/s ({summary['conformers_per_s']:.0f} conformers/s), "
        f"latency p50 {summary['latency_p50_s'] * 1000:.0f} ms, p95 {summary['latency_p95_s'] * 1000:.0f} ms, "
        f"p99 {summary['latency_p99_s'] * 1000:.0f} ms, max {summary['latency_max_s'] * 1000:.0f} ms\n"
        f"written to {args.output}"
    )
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
