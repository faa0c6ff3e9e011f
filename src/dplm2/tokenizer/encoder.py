"""SE(3)-invariant local-frame structure encoder, trained from scratch.

The DPLM-2 reference uses the frozen, pretrained GVP-Transformer encoder of ESM-IF1, which we
cannot download here. We use a local-frame encoder instead (in the spirit of ProteinMPNN /
PiFold featurisers), because every feature it sees is expressed in residue frames and is
therefore exactly invariant to global rotations and translations -- no equivariant layers are
needed, the network after featurisation is an ordinary MLP/transformer, and it is cheap on CPU.

Per residue i (frame R_i, origin CA_i, built by :func:`geometry.backbone_frames`):

- node features: own N, C, O and pseudo-CB in frame i; phi/psi/omega as sin/cos;
- edge features for the k nearest observed residues j (CA distance): j's N, CA, C, O, CB in
  frame i, the relative rotation R_i^T R_j, radial basis functions of |CA_i - CA_j| and an
  embedding of the clamped sequence offset j - i;
- ``encoder_message_layers`` rounds of neighbour message passing (masked mean of an edge MLP),
  then a pre-LN transformer over residues with a padding mask.

Geometry is computed in float64 and only then cast, so rotated copies of a structure give the
same float32 features up to the last bit in almost all cases (tokens are signs: tiny float
noise near zero would otherwise flip bits).
"""

from __future__ import annotations

import torch
from torch import nn

from dplm2.tokenizer.config import ModelConfig
from dplm2.tokenizer.geometry import backbone_dihedrals, backbone_frames, pseudo_cb

#: Sequence offsets beyond this are clamped (one extra bin each side).
MAX_OFFSET = 32
#: Coordinates in local frames are divided by this (A) before entering the network.
COORD_SCALE = 10.0
RBF_MAX = 20.0

NODE_FEATURES = 4 * 3 + 1 + 6 + 3  # N, C, O, CB local; O present; dihedral sin/cos + defined
EDGE_GEOM_FEATURES = 5 * 3 + 9  # neighbour N, CA, C, O, CB local + relative rotation


def _rbf(d: torch.Tensor, count: int) -> torch.Tensor:
    """Gaussian radial basis of distances ``[...]`` -> ``[..., count]`` (0 to 20 A)."""
    centers = torch.linspace(0.0, RBF_MAX, count, dtype=d.dtype, device=d.device)
    width = RBF_MAX / count
    return torch.exp(-(((d[..., None] - centers) / width) ** 2))


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x [B, L, *F]`` and neighbour indices ``idx [B, L, K]`` -> ``[B, L, K, *F]``."""
    b, l, k = idx.shape
    # torch.gather, not advanced indexing: the backward of ``x[i, idx]`` accumulates repeated
    # neighbours with index_put_, whose CPU kernel sums in a thread-dependent order (training
    # with 2 threads gave different weights run to run); gather's backward (scatter_add) is
    # deterministic and needs no global torch.use_deterministic_algorithms (2x slower steps).
    flat = x.reshape(b, x.shape[1], -1)  # [B, L, F]
    index = idx.reshape(b, l * k, 1).expand(-1, -1, flat.shape[-1])  # [B, L*K, F]
    out = torch.gather(flat, 1, index)  # [B, L*K, F]
    return out.reshape(b, l, k, *x.shape[2:])


def featurize(
    coords: torch.Tensor, atom_mask: torch.Tensor, mask: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Invariant node and edge features of a padded batch.

    Parameters
    ----------
    coords : ``[B, L, 4, 3]`` (missing atoms may hold anything finite)
    atom_mask : ``[B, L, 4]`` bool
    mask : ``[B, L]`` bool, observed residues
    k : number of neighbours (clipped to L - 1)

    Returns
    -------
    node ``[B, L, NODE_FEATURES]``, edge_geom ``[B, L, K, EDGE_GEOM_FEATURES]``,
    dist ``[B, L, K]`` (A), offset ``[B, L, K]`` (long, bin index), nbr_idx ``[B, L, K]``,
    nbr_mask ``[B, L, K]`` bool.
    """
    x = coords.double()
    x = torch.where(mask[..., None, None], x, torch.zeros_like(x))
    b, l = mask.shape
    rot, trans = backbone_frames(x, mask)  # [B, L, 3, 3], [B, L, 3]
    cb = pseudo_cb(x[..., 0, :], x[..., 1, :], x[..., 2, :])
    atoms = torch.cat([x, cb[..., None, :]], dim=-2)  # [B, L, 5, 3]: N, CA, C, O, CB

    # Own atoms in own frame: R^T (x - CA).
    own = torch.einsum("blji,blaj->blai", rot, atoms - trans[..., None, :])  # [B, L, 5, 3]
    has_o = atom_mask[..., 3] & mask
    own = own.clone()
    own[..., 3, :] = own[..., 3, :] * has_o[..., None]
    dihed, defined = backbone_dihedrals(x, mask)
    node = torch.cat(
        [
            own[..., [0, 2, 3, 4], :].reshape(b, l, 12) / COORD_SCALE,  # [B, L, 12]
            has_o[..., None].double(),
            dihed,
            defined.double(),
        ],
        dim=-1,
    )

    # k nearest observed neighbours by CA distance (self and unobserved excluded).
    kk = max(1, min(k, l - 1))
    ca = trans
    d2 = ((ca[:, :, None, :] - ca[:, None, :, :]) ** 2).sum(-1)  # [B, L, L]
    pair_ok = mask[:, :, None] & mask[:, None, :]
    pair_ok = pair_ok & ~torch.eye(l, dtype=torch.bool, device=mask.device)
    d2 = torch.where(pair_ok, d2, torch.full_like(d2, float("inf")))
    # Stable tie-break by index so identical inputs always pick identical neighbours.
    d2s, nbr_idx = torch.sort(d2, dim=-1, stable=True)
    d2s, nbr_idx = d2s[..., :kk], nbr_idx[..., :kk]  # [B, L, K]
    nbr_mask = torch.isfinite(d2s)
    dist = torch.sqrt(torch.where(nbr_mask, d2s, torch.zeros_like(d2s)))

    nbr_atoms = _gather(atoms, nbr_idx)  # [B, L, K, 5, 3]
    local = torch.einsum("blji,blkaj->blkai", rot, nbr_atoms - trans[:, :, None, None, :])
    nbr_rot = _gather(rot, nbr_idx)  # [B, L, K, 3, 3]
    rel_rot = torch.einsum("blji,blkjm->blkim", rot, nbr_rot)  # R_i^T R_j
    edge_geom = torch.cat(
        [local.reshape(b, l, kk, 15) / COORD_SCALE, rel_rot.reshape(b, l, kk, 9)], dim=-1
    )  # [B, L, K, 24]
    edge_geom = edge_geom * nbr_mask[..., None]
    pos = torch.arange(l, device=mask.device)
    offset = (nbr_idx - pos[None, :, None]).clamp(-MAX_OFFSET - 1, MAX_OFFSET + 1) + MAX_OFFSET + 1
    dtype = coords.dtype if coords.dtype.is_floating_point else torch.float32
    return (node.to(dtype), edge_geom.to(dtype), dist.to(dtype), offset, nbr_idx, nbr_mask)


class MessageLayer(nn.Module):
    """One round of neighbour messages: h_i += mean_j MLP([h_i, h_j, e_ij]), then an FFN."""

    def __init__(self, dim: int, edge_dim: int, dropout: float) -> None:
        super().__init__()
        self.message = nn.Sequential(
            nn.Linear(2 * dim + edge_dim, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU(),
            nn.Linear(dim, dim),
        )
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h, edge, nbr_idx, nbr_mask, mask):
        """``h [B, L, D]``, ``edge [B, L, K, E]`` -> ``[B, L, D]`` (zero outside ``mask``)."""
        k = nbr_idx.shape[-1]
        h_j = _gather(h, nbr_idx)  # [B, L, K, D]
        h_i = h[:, :, None, :].expand(-1, -1, k, -1)
        msg = self.message(torch.cat([h_i, h_j, edge], dim=-1)) * nbr_mask[..., None]
        count = nbr_mask.sum(-1, keepdim=True).clamp(min=1)
        h = self.norm1(h + self.drop(msg.sum(2) / count))
        h = self.norm2(h + self.drop(self.ffn(h)))
        return h * mask[..., None]


class LocalFrameEncoder(nn.Module):
    """Backbone ``[B, L, 4, 3]`` + masks -> invariant per-residue features ``[B, L, encoder_dim]``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.encoder_dim
        self.k = cfg.encoder_neighbors
        self.rbf = cfg.encoder_rbf
        self.node_in = nn.Sequential(nn.Linear(NODE_FEATURES, d), nn.GELU(), nn.Linear(d, d))
        self.offset_emb = nn.Embedding(2 * MAX_OFFSET + 3, d // 4)
        edge_dim = d
        self.edge_in = nn.Sequential(
            nn.Linear(EDGE_GEOM_FEATURES + cfg.encoder_rbf + d // 4, edge_dim), nn.GELU(),
            nn.Linear(edge_dim, edge_dim),
        )
        self.layers = nn.ModuleList(
            MessageLayer(d, edge_dim, cfg.dropout) for _ in range(cfg.encoder_message_layers)
        )
        self.transformer = (
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(
                    d, cfg.encoder_heads, 4 * d, cfg.dropout, activation="gelu",
                    batch_first=True, norm_first=True,
                ),
                cfg.encoder_layers,
                enable_nested_tensor=False,
            )
            if cfg.encoder_layers
            else None
        )
        self.out_norm = nn.LayerNorm(d)

    def forward(self, coords: torch.Tensor, atom_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encode a padded batch; rows outside ``mask`` are returned as zeros."""
        dtype = self.node_in[0].weight.dtype
        node, edge_geom, dist, offset, nbr_idx, nbr_mask = featurize(
            coords.to(dtype), atom_mask, mask, self.k
        )
        h = self.node_in(node) * mask[..., None]  # [B, L, D]
        edge = self.edge_in(
            torch.cat([edge_geom, _rbf(dist, self.rbf) * nbr_mask[..., None],
                       self.offset_emb(offset)], dim=-1)
        )  # [B, L, K, D]
        for layer in self.layers:
            h = layer(h, edge, nbr_idx, nbr_mask, mask)
        if self.transformer is not None:
            # A row with no observed residue would give NaN attention; keep one key open.
            pad = ~mask
            pad = pad & ~(~mask).all(dim=-1, keepdim=True).logical_and(
                torch.arange(mask.shape[1], device=mask.device) == 0
            )
            h = self.transformer(h, src_key_padding_mask=pad)
        return self.out_norm(h) * mask[..., None]
