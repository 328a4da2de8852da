"""Training runtime: YAML job configs into dataclasses, the resumable (torchrun) trainer, optimiser
helpers, distributed set-up, the problem builders of a job and Adjoint Matching's loops. Lazy:
reading a config imports no torch."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "JobConfig": ".config",
        "load_job_config": ".config",
        "TrainerConfig": ".trainer_config",
        "Trainer": ".trainer",
        "TrainingCounters": ".trainer",
        "has_training_state": ".trainer",
        "run_training_job": ".jobs",
        "register_problem": ".jobs",
        "build_problem": ".jobs",
        "cosine_lr": ".optim",
        "optimizer_step": ".optim",
        "DistributedContext": ".distributed",
        "AdjointMatchingSettings": ".adjoint_matching",
        "FineTuneTask": ".adjoint_matching",
        "FlowMatchingSettings": ".adjoint_matching",
        "fine_tune": ".adjoint_matching",
        "pretrain_flow": ".adjoint_matching",
        "sample_fine_tuned": ".adjoint_matching",
    },
)
