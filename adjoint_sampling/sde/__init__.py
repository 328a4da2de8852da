"""The SDE: noise schedules, time grids, state spaces (zero-CoM Cartesian, torus), the batch layout
of many systems, and Euler-Maruyama integration of the controlled process."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "CenteredEuclideanSpace": ".spaces",
        "ControlFn": ".integrate",
        "GRID_KINDS": ".time_grids",
        "GeometricSchedule": ".schedules",
        "GraphContext": ".batch",
        "LinearSchedule": ".schedules",
        "NoiseSchedule": ".schedules",
        "SCHEDULES": ".schedules",
        "StateSpace": ".spaces",
        "SystemBatch": ".batch",
        "TorusSpace": ".spaces",
        "build_schedule": ".schedules",
        "integrate": ".integrate",
        "integrate_with_path_weight": ".integrate",
        "sample_terminal": ".integrate",
        "split_rows": ".batch",
        "time_grid": ".time_grids",
    },
)
