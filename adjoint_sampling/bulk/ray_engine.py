"""The Ray executor of a bulk run: one :class:`BatchWorker` per Ray actor (the model is loaded once per
actor), batches streamed to free actors, results returned as they finish.

Ray is an optional extra (``pip install 'adjoint-sampling[ray]'``) imported only here, only when used.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from adjoint_sampling.bulk.library import Batch
from adjoint_sampling.bulk.worker import BatchWorker, ShardResult
from adjoint_sampling.core.errors import AdjointSamplingError, ConfigError
from adjoint_sampling.generation.types import GenerationRequest

__all__ = ["RayExecutor", "import_ray"]

log = logging.getLogger(__name__)

IN_FLIGHT_PER_ACTOR = 2
"""Batches queued on each actor, so that it never waits for the driver between batches."""


def import_ray() -> ModuleType:
    """The ``ray`` module.

    Raises:
        ConfigError: Ray is not installed (names the extra).
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'adjoint-sampling[ray]'") from None
    return ray


class RayExecutor:
    """A pool of Ray actors, each holding one generator; use as a context manager. Ray starts (or joins
    the cluster) when the first batch arrives, so a resumed run with nothing left to do starts nothing.

    Args:
        model: generator spec loaded by every actor.
        template: request options of every molecule.
        address: a Ray cluster to join (``ray start --head`` ...); ``None`` starts a local Ray.
        num_cpus: CPUs of the local Ray (default: every core of this machine); ignored with ``address``.
        num_actors: actors to start (default: one per CPU of the cluster).
        energy_model: GNN energy checkpoint of ``relax="gnn"`` loaded by every actor (``None``: the
            actor's ``AS_ENERGY_MODEL``, else the shipped one).
    """

    def __init__(
        self, model: str, template: GenerationRequest, *, address: str | None = None, num_cpus: int | None = None,
        num_actors: int | None = None, energy_model: str | None = None,
    ) -> None:
        self.ray = import_ray()
        self.model, self.template, self.energy_model = model, template, energy_model
        self.address, self.num_cpus, self.num_actors = address, num_cpus, num_actors
        self.actors: list[Any] = []

    def __enter__(self) -> RayExecutor:
        return self

    def _start(self) -> None:
        ray = self.ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
        if self.address:
            ray.init(address=self.address, log_to_driver=verbose, logging_level=logging.WARNING)
        else:
            ray.init(
                num_cpus=self.num_cpus or len(os.sched_getaffinity(0)), include_dashboard=False,
                log_to_driver=verbose, logging_level=logging.WARNING,
            )
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, self.num_actors or cpus)
        actor_class = ray.remote(num_cpus=1)(BatchWorker)
        self.actors = [actor_class.remote(self.model, self.template, self.energy_model) for _ in range(count)]
        log.info("Ray: %d actor(s) on %d CPU(s) (%s)", count, cpus, self.address or "local")

    def __exit__(self, *exc: object) -> None:
        if not self.ray.is_initialized():
            return
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        self.ray.shutdown()

    def map_unordered(self, batches: Iterator[Batch]) -> Iterator[ShardResult]:
        """Keep ``IN_FLIGHT_PER_ACTOR`` batches on every actor; yield results as they finish.

        Raises:
            AdjointSamplingError: an actor failed (the error of the generator, or Ray's one-line reason).
        """
        first = next(batches, None)
        if first is None:
            return
        batches = itertools.chain([first], batches)
        self._start()
        ray = self.ray
        slots = [actor for actor in self.actors for _ in range(IN_FLIGHT_PER_ACTOR)]
        pending: dict[Any, Any] = {}
        exhausted = False
        while True:
            while slots and not exhausted:
                batch = next(batches, None)
                if batch is None:
                    exhausted = True
                    break
                actor = slots.pop()
                pending[actor.run.remote(batch)] = actor
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                slots.append(pending.pop(ref))
                yield self._get(ref)

    def _get(self, ref: Any) -> ShardResult:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, AdjointSamplingError):
                raise cause from None
            raise AdjointSamplingError(f"Ray task failed: {_first_line(exc)}") from None
        except self.ray.exceptions.RayError as exc:
            raise AdjointSamplingError(f"Ray: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
