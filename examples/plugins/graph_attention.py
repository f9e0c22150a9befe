"""A tunelab plugin: a small graph-attention network over fixed-size graphs (seed 001's GNN).

Use it with any command that takes ``--plugin``::

    tunelab train --plugin examples/plugins/graph_attention.py --config examples/plugins/graph_attention.yaml

What a plugin shows here:

* a **dataset** registered with ``tunelab.register_dataset``: each sample is one graph of N nodes;
  ``x [samples, N, features]`` holds node features (nodes play the role of time steps, so
  ``lengths`` counts valid nodes and the usual padding rules apply), and ``extras["adj"]``
  ``[samples, N, N]`` holds the adjacency.  Every key of ``extras`` reaches the model's forward as
  a keyword argument, so the trainer needs no graph-specific code;
* a **model family** registered with ``tunelab.register_model`` and its own typed config: its
  fields get validation, ``tunelab models`` listing and search-space support like built-ins.

The synthetic task: two nodes of each graph are marked (feature 0); the class is their distance
in the graph — adjacent, two hops, or further/unconnected — which node features alone cannot tell.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from tunelab import register_dataset, register_model
from tunelab.config import ModelConfig, shape
from tunelab.data.base import DataMeta, SequenceData
from tunelab.models.base import AttentionPool, length_mask, masked_mean

__all__ = ["GraphAttentionConfig", "GraphAttentionNet", "load_graph_motifs"]

CLASSES = ("adjacent", "two_hops", "far")


@register_dataset("graph_motifs")
def load_graph_motifs(
    *, n: int = 900, nodes: int = 10, features: int = 4, edge_prob: float = 0.2, seed: int = 0
) -> SequenceData:
    """Random graphs with two marked nodes, labelled by the marks' hop distance (1, 2, >2)."""
    g = torch.Generator().manual_seed(seed)
    per_class = n // len(CLASSES)
    xs, adjs, ys = [], [], []
    counts = torch.zeros(len(CLASSES), dtype=torch.long)
    while int(counts.min()) < per_class:  # draw candidates in bulk, keep them while their class needs more
        m = 4 * n
        upper = (torch.rand(m, nodes, nodes, generator=g) < edge_prob).triu(1).float()
        adj = upper + upper.transpose(1, 2)
        pair = torch.rand(m, nodes, generator=g).argsort(dim=1)[:, :2]  # two distinct marked nodes
        rows = torch.arange(m)
        a, b = pair[:, 0], pair[:, 1]
        hop2 = torch.bmm(adj, adj)[rows, a, b] > 0
        label = torch.where(adj[rows, a, b] > 0, 0, torch.where(hop2, 1, 2))
        x = torch.randn(m, nodes, features, generator=g) * 0.5
        x[:, :, 0] = 0.0
        x[rows, a, 0] = 1.0
        x[rows, b, 0] = 1.0
        for c in range(len(CLASSES)):
            take = (label == c).nonzero().flatten()[: per_class - int(counts[c])]
            xs.append(x[take])
            adjs.append(adj[take])
            ys.append(label[take])
            counts[c] += len(take)
    order = torch.randperm(int(counts.sum()), generator=g)
    x, adj, y = torch.cat(xs)[order], torch.cat(adjs)[order], torch.cat(ys)[order]
    meta = DataMeta("graph_motifs", channels=features, max_len=nodes, n_classes=len(CLASSES), class_names=CLASSES)
    return SequenceData(x=x, lengths=torch.full((len(y),), nodes), y=y, meta=meta, extras={"adj": adj})


class GraphAttentionConfig(ModelConfig):
    """Stacked multi-head graph-attention layers (Velickovic et al. 2018), then a pooled readout."""

    example_dataset: ClassVar[str] = "graph_motifs"  # the model tests build their inputs from it

    name: Literal["graph_attention"] = "graph_attention"
    hidden_dim: int = shape(32, "node embedding width", ge=1)
    num_layers: int = shape(3, "message-passing (attention) layers; the receptive field in hops", ge=1)
    num_heads: int = shape(4, "attention heads per layer (must divide hidden_dim)", ge=1)
    dropout: float = Field(0.1, ge=0, lt=1, description="on attention weights and before the head")

    @model_validator(mode="after")
    def _heads_divide(self) -> GraphAttentionConfig:
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"model.num_heads={self.num_heads} must divide model.hidden_dim={self.hidden_dim}")
        return self


class GraphAttentionLayer(nn.Module):
    """Each node attends over itself and its neighbours; residual, LayerNorm, ELU."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.proj = nn.Linear(dim, dim, bias=False)
        self.src = nn.Parameter(torch.randn(heads, dim // heads) * 0.1)
        self.dst = nn.Parameter(torch.randn(heads, dim // heads) * 0.1)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, allowed: Tensor) -> Tensor:
        b, n, d = h.shape
        z = self.proj(h).view(b, n, self.heads, d // self.heads)
        scores = (z * self.src).sum(-1)[:, :, None, :] + (z * self.dst).sum(-1)[:, None, :, :]  # [B, i, j, H]
        scores = nn.functional.leaky_relu(scores, 0.2).float()
        # finite fill: padded nodes (no allowed neighbour) get uniform weights, not NaN; masked later
        scores = scores.masked_fill(~allowed[..., None], torch.finfo(scores.dtype).min)
        weights = self.drop(torch.softmax(scores, dim=2).to(h.dtype))
        message = torch.einsum("bijh,bjhd->bihd", weights, z).reshape(b, n, d)
        return nn.functional.elu(self.norm(h + message))


class GraphAttentionNet(nn.Module):
    """Node embedding, graph attention over ``adj`` (+ self loops), masked mean + attention readout."""

    def __init__(self, cfg: GraphAttentionConfig, meta: DataMeta) -> None:
        super().__init__()
        self.embed = nn.Linear(meta.channels, cfg.hidden_dim)
        self.layers = nn.ModuleList(
            GraphAttentionLayer(cfg.hidden_dim, cfg.num_heads, cfg.dropout) for _ in range(cfg.num_layers)
        )
        self.pool = AttentionPool(cfg.hidden_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * cfg.hidden_dim, meta.out_dim)

    def forward(self, x: Tensor, lengths: Tensor, adj: Tensor) -> Tensor:
        n = x.shape[1]
        adj = adj[:, :n, :n]  # batches trim x to the largest graph; trim adj alike
        node = length_mask(lengths, n)
        eye = torch.eye(n, dtype=torch.bool, device=x.device)
        allowed = ((adj > 0) | eye) & node[:, :, None] & node[:, None, :]
        h = self.embed(x) * node[..., None]
        for layer in self.layers:
            h = layer(h, allowed) * node[..., None]
        z = torch.cat([masked_mean(h, node), self.pool(h, node)], dim=-1)
        return self.head(self.drop(z))


@register_model("graph_attention", config=GraphAttentionConfig)
def build_graph_attention(cfg: GraphAttentionConfig, meta: DataMeta) -> nn.Module:
    """Graph attention network over node features + adjacency (batch key ``adj``)."""
    return GraphAttentionNet(cfg, meta)
