"""The SDE: noise schedules (incl. the memoryless one of a flow), time grids, state spaces
(zero-CoM Cartesian, torus, Euclidean), base drifts (a flow's velocity as an SDE drift), the batch
layout of many systems, and Euler-Maruyama integration of the controlled process."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "CenteredEuclideanSpace": ".spaces",
        "ControlFn": ".integrate",
        "DriftFn": ".base_drift",
        "EuclideanSpace": ".spaces",
        "GRID_KINDS": ".time_grids",
        "GeometricSchedule": ".schedules",
        "GraphContext": ".batch",
        "LinearSchedule": ".schedules",
        "MemorylessSchedule": ".schedules",
        "NoiseSchedule": ".schedules",
        "SCHEDULES": ".schedules",
        "StateSpace": ".spaces",
        "SystemBatch": ".batch",
        "TorusSpace": ".spaces",
        "VelocityFn": ".base_drift",
        "build_schedule": ".schedules",
        "finetuned_velocity": ".base_drift",
        "flow_sde_drift": ".base_drift",
        "integrate": ".integrate",
        "integrate_path": ".integrate",
        "integrate_with_path_weight": ".integrate",
        "interpolant_eta": ".base_drift",
        "sample_terminal": ".integrate",
        "split_rows": ".batch",
        "time_grid": ".time_grids",
    },
)
