"""A linear-interpolant flow from N(0, I) to N(m, S) with its exact velocity field, and the closed
forms of its reward-tilted targets (tests of Adjoint Matching)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adjoint_sampling.sde.base_drift import flow_sde_drift
from adjoint_sampling.sde.schedules import NoiseSchedule
from adjoint_sampling.sde.spaces import EuclideanSpace


class TimeMLP(nn.Module):
    """A small MLP field ``(t (M,), x (M, D)) -> (M, D)`` with the controller signature (the batch is
    unused): a control or a velocity for one-row systems."""

    def __init__(self, dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, dim))

    def forward(self, t, x, batch=None):
        return self.net(torch.cat([t.view(-1, 1).to(x.dtype), x], -1))


class GaussianFlow:
    """``X_t = (1 - t) X_0 + t X_1``, ``X_0 ~ N(0, I)``, ``X_1 ~ N(mean, cov)`` independent, in R^D.

    The marginal at t is ``N(t m, Sigma_t)``, ``Sigma_t = (1 - t)^2 I + t^2 S``, and the velocity
    ``v(x, t) = E[X_1 - X_0 | X_t = x] = m + (t S - (1 - t) I) Sigma_t^{-1} (x - t m)`` (Gaussian
    conditioning: ``Cov(X_1 - X_0, X_t) = t S - (1 - t) I``). One system is one row (D wide).
    """

    def __init__(self, mean: Tensor, cov: Tensor) -> None:
        self.mean = mean.double()
        self.cov = cov.double()
        self.dim = int(mean.shape[0])

    def marginal_cov(self, t: Tensor) -> Tensor:
        """``Sigma_t`` for times ``t`` ``(B,)``: ``(B, D, D)``."""
        eye = torch.eye(self.dim, dtype=torch.float64)
        t = t.double().view(-1, 1, 1)
        return (1 - t) ** 2 * eye + t**2 * self.cov

    def velocity(self, t: Tensor, x: Tensor) -> Tensor:
        """``v(t (B,), x (B, D)) -> (B, D)`` (one row per system)."""
        eye = torch.eye(self.dim, dtype=torch.float64)
        same = bool((t == t[0]).all())
        tt = (t[:1] if same else t).double().view(-1, 1, 1)  # one time for all systems: one solve
        gain = (tt * self.cov - (1 - tt) * eye) @ torch.linalg.inv((1 - tt) ** 2 * eye + tt**2 * self.cov)
        centred = (x.double() - t.double().view(-1, 1) * self.mean).unsqueeze(-1)
        return (self.mean + (gain @ centred).squeeze(-1)).to(x.dtype)

    def sample_marginal(self, t: float, n: int, generator: torch.Generator) -> Tensor:
        """``n`` draws of ``X_t`` ``(n, D)`` float64 (e.g. the start of a memoryless path at t_start)."""
        chol = torch.linalg.cholesky(self.marginal_cov(torch.tensor([t]))[0])
        return t * self.mean + torch.randn(n, self.dim, generator=generator, dtype=torch.float64) @ chol.T

    def tilted_by_linear(self, c: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """Mean and covariance of ``N(m, S) exp(lambda c . x)``: ``N(m + lambda S c, S)``."""
        return self.mean + scale * self.cov @ c.double(), self.cov.clone()

    def tilted_by_linear_from(self, c: Tensor, t: float, scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """Mean and covariance of ``X_1`` when only the transition from ``X_t`` (the base's marginal) is
        tilted by ``exp(lambda c . x_1)`` (a control windowed from ``t``): each conditional
        ``N(mu(X_t), C_t)`` shifts by ``lambda C_t c`` and keeps ``C_t``, so the mean moves by
        ``lambda C_t c`` and the covariance stays ``S``. ``C_t = Cov(X_1 | X_t) = S - t^2 S Sigma_t^-1 S``
        (the memoryless SDE's ``(X_t, X_1)`` is the interpolant's)."""
        cond = self.cov - t**2 * self.cov @ torch.linalg.inv(self.marginal_cov(torch.tensor([t]))[0]) @ self.cov
        return self.mean + scale * cond @ c.double(), self.cov.clone()

    def tilted_by_quadratic(self, q: Tensor, centre: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """Mean and covariance of ``N(m, S) exp(-lambda (x - x0)^T Q (x - x0) / 2)``: precision
        ``S^{-1} + lambda Q``, mean ``P^{-1} (S^{-1} m + lambda Q x0)``."""
        s_inv = torch.linalg.inv(self.cov)
        cov = torch.linalg.inv(s_inv + scale * q.double())
        return cov @ (s_inv @ self.mean + scale * q.double() @ centre.double()), cov


def euler_chain_moments(flow: GaussianFlow, schedule: NoiseSchedule, grid: Tensor) -> tuple[Tensor, Tensor]:
    """Exact mean and covariance at ``grid[-1]`` of the Euler-Maruyama chain of the flow's SDE
    ``x <- x + h b(t_k, x) + sqrt(dnu_k) eps`` (``sde.integrate`` without control, drift
    ``sde.flow_sde_drift``, affine in x here) started from the flow's marginal at ``grid[0]``: the
    discretisation's own answer, free of sampling error (float64)."""
    dim = flow.dim
    space = EuclideanSpace(torch.arange(dim + 1), dim + 1, dim)
    drift = flow_sde_drift(flow.velocity, schedule, space)
    probes = torch.cat([torch.zeros(1, dim, dtype=torch.float64), torch.eye(dim, dtype=torch.float64)])
    nu = schedule.nu(grid.double())
    t0 = grid[:1].double()
    mean, cov = t0 * flow.mean, flow.marginal_cov(t0)[0]
    for k in range(grid.shape[0] - 1):
        out = drift(torch.full((dim + 1,), float(grid[k]), dtype=torch.float64), probes)
        offset, jac = out[0], (out[1:] - out[0]).T  # column i = b(e_i) - b(0)
        h = float(grid[k + 1] - grid[k])
        step = torch.eye(dim, dtype=torch.float64) + h * jac
        mean = step @ mean + h * offset
        cov = step @ cov @ step.T + float(nu[k + 1] - nu[k]) * torch.eye(dim, dtype=torch.float64)
    return mean, cov
