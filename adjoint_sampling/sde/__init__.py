"""The SDE: noise schedules, time grids, state spaces (zero-CoM Cartesian, torus), the batch layout
of many systems, and Euler-Maruyama integration of the controlled process."""

from adjoint_sampling.sde.batch import GraphContext, SystemBatch, split_rows
from adjoint_sampling.sde.integrate import ControlFn, integrate, integrate_with_path_weight, sample_terminal
from adjoint_sampling.sde.schedules import SCHEDULES, GeometricSchedule, LinearSchedule, NoiseSchedule, build_schedule
from adjoint_sampling.sde.segments import segment_counts, segment_mean, segment_sum
from adjoint_sampling.sde.spaces import CenteredEuclideanSpace, StateSpace, TorusSpace
from adjoint_sampling.sde.time_grids import GRID_KINDS, time_grid

__all__ = [
    "CenteredEuclideanSpace",
    "ControlFn",
    "GRID_KINDS",
    "GeometricSchedule",
    "GraphContext",
    "LinearSchedule",
    "NoiseSchedule",
    "SCHEDULES",
    "StateSpace",
    "SystemBatch",
    "TorusSpace",
    "build_schedule",
    "integrate",
    "integrate_with_path_weight",
    "sample_terminal",
    "segment_counts",
    "segment_mean",
    "segment_sum",
    "split_rows",
    "time_grid",
]
