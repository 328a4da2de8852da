"""State spaces of the SDE: zero-centre-of-mass Euclidean particles, the torus of torsions, and
plain Euclidean space.

A batch of B systems is one flattened tensor ``x`` of shape (M, D) with a row -> system index
``batch`` (M,). Cartesian: rows are particles, D = 2 or 3. Torsional: rows are torsions, D = 1,
angles in [-pi, pi). Euclidean: rows are unconstrained vectors (a flow on R^D, or torsions lifted
to the line for Adjoint Matching, wrapped only at the end: DESIGN.md section 8).
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor
from torch_geometric.utils import degree, scatter

from adjoint_sampling.core.geometry import TWO_PI, wrap_angle
from adjoint_sampling.sde.schedules import NoiseSchedule

__all__ = ["StateSpace", "CenteredEuclideanSpace", "EuclideanSpace", "TorusSpace"]

class StateSpace(ABC):
    """Geometry of a batch of systems: projections, base density and base bridge.

    Attributes:
        batch: ``(M,)`` long tensor, system index of every row.
        num_systems: B.
        dim: D, the width of a row.
    """

    def __init__(self, batch: Tensor, num_systems: int, dim: int) -> None:
        self.batch = batch.long()
        self.num_systems = int(num_systems)
        self.dim = int(dim)

    @property
    def num_rows(self) -> int:
        return int(self.batch.shape[0])

    def to(self, device: torch.device | str) -> StateSpace:
        """The same space with its row index on ``device`` (``self`` when it is already there)."""
        device = torch.device(device)
        if self.batch.device == device:
            return self
        moved = copy.copy(self)
        moved.batch = self.batch.to(device)
        return moved

    def rows_of(self, per_system: Tensor) -> Tensor:
        """Broadcast a per-system tensor ``(B,)`` to rows ``(M, 1)``."""
        return per_system[self.batch].unsqueeze(-1)

    def initial_state(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The start ``X_0 = 0``: zeros ``(M, D)``."""
        return torch.zeros(self.num_rows, self.dim, dtype=dtype, device=self.batch.device)

    def noise(self, generator: torch.Generator | None, dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal noise ``(M, D)`` projected to the tangent space."""
        eps = torch.randn(self.num_rows, self.dim, generator=generator, dtype=dtype)
        return self.project_vector(eps.to(self.batch.device))

    @abstractmethod
    def project_state(self, x: Tensor) -> Tensor:
        """Map a state ``(M, D)`` onto the space (remove CoM / wrap)."""

    @abstractmethod
    def project_vector(self, v: Tensor) -> Tensor:
        """Project a vector field ``(M, D)`` onto the tangent space."""

    @abstractmethod
    def base_log_density_grad(self, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        """Gradient of ``log p1base`` at ``x`` ``(M, D)``."""

    def base_log_density(self, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        """``log p1base(x)`` per system ``(B,)`` float64, the density of the base process at time 1
        (needed for importance weights; spaces without a closed form raise ``NotImplementedError``)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form base density")

    @abstractmethod
    def sample_bridge(
        self, x1: Tensor, t: Tensor, schedule: NoiseSchedule, generator: torch.Generator | None
    ) -> Tensor:
        """Draw ``X_t | X_1 = x1`` of the base process; ``t`` is ``(B,)`` (one time per system)."""

    @abstractmethod
    def bridge_target(self, x1: Tensor, xt: Tensor, remaining_variance: Tensor) -> Tensor:
        """Scaled control of the base bridge: ``grad_xt log p(X_1 = x1 | X_t = xt)``.

        ``remaining_variance`` is ``nu_1 - nu_t`` per row ``(M, 1)``; Euclidean:
        ``(x1 - xt) / (nu_1 - nu_t)``.
        """

    def sample_base(self, schedule: NoiseSchedule, generator: torch.Generator | None) -> Tensor:
        """Draw from the base marginal at time 1, ``(M, D)``."""
        return self.project_state(math.sqrt(schedule.nu1) * self.noise(generator))


class CenteredEuclideanSpace(StateSpace):
    """Particles in R^{n x D} restricted to zero centre of mass per system."""

    def _remove_com(self, v: Tensor) -> Tensor:
        """``v`` (M, D) minus the mean row of its system."""
        return v - scatter(v, self.batch, dim=0, dim_size=self.num_systems, reduce="mean")[self.batch]

    def project_state(self, x: Tensor) -> Tensor:
        return self._remove_com(x)

    def project_vector(self, v: Tensor) -> Tensor:
        return self._remove_com(v)

    def base_log_density_grad(self, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        """``-x / nu_1`` (``p1base = N(0, nu_1 I)`` on the zero-CoM subspace)."""
        return -self._remove_com(x) / schedule.nu1

    def base_log_density(self, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        """``N(0, nu_1 I)`` on each system's zero-CoM subspace (``(n_i - 1) D`` dimensions)."""
        xc = self._remove_com(x).double()
        sq = scatter(xc.pow(2).sum(-1), self.batch, dim=0, dim_size=self.num_systems, reduce="sum")
        dof = (degree(self.batch, self.num_systems, dtype=torch.long) - 1).double() * self.dim
        return -sq / (2.0 * schedule.nu1) - 0.5 * dof * math.log(2.0 * math.pi * schedule.nu1)

    def sample_bridge(
        self, x1: Tensor, t: Tensor, schedule: NoiseSchedule, generator: torch.Generator | None
    ) -> Tensor:
        coef, var = schedule.bridge_mean_coef_and_var(t.to(x1.dtype))
        mean = self.rows_of(coef) * x1
        std = self.rows_of(var).clamp(min=0).sqrt()
        return self.project_state(mean + std * self.noise(generator, x1.dtype))

    def bridge_target(self, x1: Tensor, xt: Tensor, remaining_variance: Tensor) -> Tensor:
        return self.project_vector((x1 - xt) / remaining_variance)


class EuclideanSpace(StateSpace):
    """Unconstrained rows in R^D: no projection; ``p1base = N(0, nu_1 I)`` on every row."""

    def project_state(self, x: Tensor) -> Tensor:
        return x

    def project_vector(self, v: Tensor) -> Tensor:
        return v

    def base_log_density_grad(self, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        return -x / schedule.nu1

    def base_log_density(self, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        sq = scatter(x.double().pow(2).sum(-1), self.batch, dim=0, dim_size=self.num_systems, reduce="sum")
        dof = degree(self.batch, self.num_systems, dtype=torch.long).double() * self.dim
        return -sq / (2.0 * schedule.nu1) - 0.5 * dof * math.log(2.0 * math.pi * schedule.nu1)

    def sample_bridge(
        self, x1: Tensor, t: Tensor, schedule: NoiseSchedule, generator: torch.Generator | None
    ) -> Tensor:
        coef, var = schedule.bridge_mean_coef_and_var(t.to(x1.dtype))
        return self.rows_of(coef) * x1 + self.rows_of(var).clamp(min=0).sqrt() * self.noise(generator, x1.dtype)

    def bridge_target(self, x1: Tensor, xt: Tensor, remaining_variance: Tensor) -> Tensor:
        return (x1 - xt) / remaining_variance


class TorusSpace(StateSpace):
    """Torsion angles on [-pi, pi)^m, one row per torsion (D = 1).

    ``p1base`` is the wrapped normal of variance ``nu_1``, evaluated with the images
    ``x + 2 pi k`` for ``|k| <= images``.
    """

    def __init__(self, batch: Tensor, num_systems: int, images: int = 3) -> None:
        super().__init__(batch, num_systems, dim=1)
        self.images = int(images)

    def _shifts(self, like: Tensor) -> Tensor:
        k = torch.arange(-self.images, self.images + 1, dtype=like.dtype, device=like.device)
        return TWO_PI * k

    def project_state(self, x: Tensor) -> Tensor:
        return wrap_angle(x)

    def project_vector(self, v: Tensor) -> Tensor:
        return v

    def _image_weights(self, displacement: Tensor, variance: Tensor) -> tuple[Tensor, Tensor]:
        """Lifts ``displacement + 2 pi k`` ``(M, D, K)`` and their normal weights (softmax over k)."""
        lifts = displacement.unsqueeze(-1) + self._shifts(displacement)
        logits = -(lifts**2) / (2.0 * variance.unsqueeze(-1))
        return lifts, torch.softmax(logits, dim=-1)

    def base_log_density_grad(self, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        nu1 = torch.full_like(x, schedule.nu1)
        lifts, w = self._image_weights(x, nu1)
        return -(w * lifts).sum(-1) / nu1

    def sample_bridge(
        self, x1: Tensor, t: Tensor, schedule: NoiseSchedule, generator: torch.Generator | None
    ) -> Tensor:
        """Pick a lift ``x1 + 2 pi k`` with probability proportional to its base density, draw the
        Gaussian bridge from 0 to that lift on the line, wrap."""
        lifts, w = self._image_weights(x1, torch.full_like(x1, schedule.nu1))
        pick = torch.multinomial(w.reshape(-1, w.shape[-1]), 1, generator=generator).view(x1.shape)
        lifted = torch.gather(lifts, -1, pick.unsqueeze(-1)).squeeze(-1)
        coef, var = schedule.bridge_mean_coef_and_var(t.to(x1.dtype))
        xt = self.rows_of(coef) * lifted + self.rows_of(var).clamp(min=0).sqrt() * self.noise(generator, x1.dtype)
        return wrap_angle(xt)

    def bridge_target(self, x1: Tensor, xt: Tensor, remaining_variance: Tensor) -> Tensor:
        """Score of the wrapped heat kernel: ``sum_k w_k (x1 + 2 pi k - xt) / var``."""
        var = remaining_variance.expand_as(xt)
        lifts, w = self._image_weights(wrap_angle(x1 - xt), var)
        return (w * lifts).sum(-1) / var
