"""Architecture ``"mace"`` of :class:`~adjoint_sampling.energy.gnn_model.GNNPotential`: mace-torch's MACE
reading a :class:`~adjoint_sampling.energy.gnn_graph.ConformerGraph`.

mace-torch is optional (``pip install mace-torch``); it is imported only when this architecture is
built. MACE's own per-element energies are zero here: the float64 reference and the energy scale
of :class:`GNNPotential` play that part, as for every architecture. The total charge enters through
MACE's joint embedding (a categorical per-conformer feature). Hyper-parameters map as: channels
``num_scalars`` (degrees 0 and 1 when ``num_vectors > 0``), ``lmax`` -> ``max_ell``,
``num_layers`` -> interactions, ``num_basis`` Bessel functions, ``envelope_p`` -> polynomial cutoff,
``radial_hidden`` -> a 3-layer radial MLP of that width, ``correlation`` -> body order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.energy.gnn_graph import ConformerGraph
from adjoint_sampling.energy.gnn_hparams import GNNHParams

__all__ = ["MACENetwork", "mace_available"]


def _import_mace():
    try:
        from e3nn import o3
        from mace import modules
    except ImportError as exc:
        raise ConfigError(
            "GNN architecture 'mace' needs the mace-torch package (pip install --no-deps mace-torch "
            f"plus its imports); it could not be imported: {exc}"
        ) from exc
    return o3, modules


def mace_available() -> bool:
    """Whether mace-torch can be imported here."""
    try:
        _import_mace()
    except ConfigError:
        return False
    return True


class MACENetwork(nn.Module):
    """Per-atom energies ``(A,)`` of a :class:`ConformerGraph` from a mace-torch ``MACE`` model."""

    def __init__(self, hp: GNNHParams) -> None:
        super().__init__()
        o3, modules = _import_mace()
        self.hparams = hp
        self.num_species = len(hp.elements)
        channels = f"{hp.num_scalars}x0e" + (f" + {hp.num_scalars}x1o" if hp.num_vectors > 0 else "")
        self.mace = modules.MACE(
            r_max=hp.cutoff,
            num_bessel=hp.num_basis,
            num_polynomial_cutoff=hp.envelope_p,
            max_ell=hp.lmax,
            interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            num_interactions=hp.num_layers,
            num_elements=self.num_species,
            hidden_irreps=o3.Irreps(channels),
            MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=np.zeros(self.num_species),
            avg_num_neighbors=hp.avg_num_neighbors,
            atomic_numbers=list(hp.elements),
            correlation=hp.correlation,
            gate=nn.functional.silu,
            radial_MLP=[hp.radial_hidden] * 3,
            embedding_specs={
                "total_charge": {
                    "type": "categorical", "per": "graph", "emb_dim": 8,
                    "num_classes": hp.max_charge - hp.min_charge + 1, "offset": -hp.min_charge,
                }
            },
        )

    def forward(self, graph: ConformerGraph) -> Tensor:
        """Per-atom energies ``(A,)`` (network dtype, before the energy scale)."""
        pos = graph.positions
        num_conf = graph.num_conformers
        counts = torch.bincount(graph.conformer, minlength=num_conf)
        ptr = torch.zeros(num_conf + 1, dtype=torch.long, device=pos.device)
        ptr[1:] = torch.cumsum(counts, 0)
        num_edges = graph.src.numel()
        data = {
            "positions": pos,
            "node_attrs": nn.functional.one_hot(graph.species, self.num_species).to(pos.dtype),
            "edge_index": torch.stack([graph.src, graph.dst]),
            "shifts": torch.zeros(num_edges, 3, dtype=pos.dtype, device=pos.device),
            "unit_shifts": torch.zeros(num_edges, 3, dtype=pos.dtype, device=pos.device),
            "cell": torch.zeros(num_conf * 3, 3, dtype=pos.dtype, device=pos.device),
            "batch": graph.conformer,
            "ptr": ptr,
            "total_charge": graph.charge.to(pos.dtype),
        }
        out = self.mace(data, training=self.training, compute_force=False)
        return out["node_energy"]
