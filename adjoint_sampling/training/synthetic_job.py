"""Registers ``problem: {kind: synthetic, system: dw4|lj13|lj55, pair_sum: ordered|unordered}`` for training jobs."""

from __future__ import annotations

from typing import Any

from adjoint_sampling.problems.synthetic import SyntheticProblem, SyntheticProblemParams
from adjoint_sampling.training.config import parse_dataclass
from adjoint_sampling.training.jobs import register_problem


@register_problem("synthetic")
def build_synthetic_problem(spec: dict[str, Any]) -> SyntheticProblem:
    params = parse_dataclass(SyntheticProblemParams, spec, "config.problem")
    return SyntheticProblem.from_name(params.system, params.pair_sum)
