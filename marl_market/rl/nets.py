"""Policies: a market encoder (mlp, sage or gat) under a Gaussian actor and a critic.

Observations arrive as the environment's arrays (``marl_market.rl.env``): a per-agent
``vector`` and the asset graph as ``nodes`` (assets x features), ``edge_index`` and
``edge_attr``. Every graph of a run has the same assets and edges, so a minibatch of B graphs is
batched once, by offsetting one edge index (``batch_graphs``), instead of building a
``torch_geometric`` ``Data`` per agent per step (DESIGN.md §5: that costs 5x the network).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

ENCODERS = ("mlp", "sage", "gat")


def layer_init(layer: nn.Linear, std: float = math.sqrt(2.0), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with gain ``std`` and a constant bias (CleanRL's ``layer_init``)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def batch_graphs(
    nodes: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """B graphs with the same A nodes and E edges as one disjoint graph.

    nodes (B, A, F), edge_index (2, E) shared, edge_attr (B, E, D) -> x (B*A, F), the edge index
    (2, B*E) with graph b's nodes offset by b*A, edge_attr (B*E, D) and the batch vector (B*A,).
    """
    n_graphs, n_nodes, _ = nodes.shape
    offsets = (torch.arange(n_graphs) * n_nodes).repeat_interleave(edge_index.shape[1])
    batched_edges = edge_index.repeat(1, n_graphs) + offsets
    batch = torch.arange(n_graphs).repeat_interleave(n_nodes)
    return (
        nodes.reshape(n_graphs * n_nodes, -1),
        batched_edges,
        edge_attr.reshape(n_graphs * edge_index.shape[1], -1),
        batch,
    )


class MLPEncoder(nn.Module):
    """The vector observation through two tanh layers (the graph is ignored)."""

    def __init__(self, vector_dim: int, node_dim: int, hidden: int = 64):
        super().__init__()
        self.out_dim = hidden
        self.net = nn.Sequential(
            layer_init(nn.Linear(vector_dim, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)),
            nn.Tanh(),
        )

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(obs["vector"])


class GraphEncoder(nn.Module):
    """Two graph convolutions over the asset graph, mean-pooled, joined with the vector.

    ``kind="sage"`` uses GraphSAGE (``SAGEConv``, spec 000's ``MarketGraphEncoder``);
    ``kind="gat"`` uses graph attention (``GATConv`` with the correlation as edge feature), whose
    attention weights of the last forward pass are kept in ``attention`` for the Train page.
    """

    def __init__(self, vector_dim: int, node_dim: int, hidden: int = 64, kind: str = "sage"):
        super().__init__()
        from torch_geometric.nn import GATConv, SAGEConv

        self.kind = kind
        if kind == "sage":
            self.conv1, self.conv2 = SAGEConv(node_dim, hidden), SAGEConv(hidden, hidden)
        elif kind == "gat":
            self.conv1 = GATConv(node_dim, hidden, heads=1, edge_dim=1)
            self.conv2 = GATConv(hidden, hidden, heads=1, edge_dim=1)
        else:
            raise ValueError(f"unknown graph encoder {kind!r}: choose sage or gat")
        self.vector = nn.Sequential(layer_init(nn.Linear(vector_dim, hidden)), nn.Tanh())
        self.out_dim = 2 * hidden
        self.attention: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        from torch_geometric.nn import global_mean_pool

        x, edge_index, edge_attr, batch = batch_graphs(
            obs["nodes"], obs["shared_edge_index"], obs["edge_attr"]
        )
        if self.kind == "sage":
            h = torch.tanh(self.conv1(x, edge_index))
            h = torch.tanh(self.conv2(h, edge_index))
        else:
            h = torch.tanh(self.conv1(x, edge_index, edge_attr))
            h, self.attention = self.conv2(h, edge_index, edge_attr, return_attention_weights=True)
            h = torch.tanh(h)
        pooled = global_mean_pool(h, batch, size=obs["nodes"].shape[0])
        return torch.cat([pooled, self.vector(obs["vector"])], dim=-1)


def make_encoder(kind: str, vector_dim: int, node_dim: int, hidden: int = 64) -> nn.Module:
    """The encoder called ``kind`` (``ENCODERS``)."""
    if kind == "mlp":
        return MLPEncoder(vector_dim, node_dim, hidden)
    if kind in ("sage", "gat"):
        return GraphEncoder(vector_dim, node_dim, hidden, kind)
    raise ValueError(f"unknown encoder {kind!r}: choose from {', '.join(ENCODERS)}")


HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def gaussian_log_prob(
    action: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    """Log-density of ``action`` under independent normals, summed over the action's entries.

    ``torch.distributions.Normal`` gives the same numbers, but building one (with its argument
    checks) cost more than the network itself at a rollout's batch sizes.
    """
    z = (action - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - HALF_LOG_2PI).sum(-1)


class ActorCritic(nn.Module):
    """A Gaussian policy (state-independent log-std) and a value head over one encoder."""

    def __init__(self, encoder: nn.Module, action_dim: int):
        super().__init__()
        self.encoder = encoder
        self.actor_mean = layer_init(nn.Linear(encoder.out_dim, action_dim), std=0.01)
        self.actor_logstd = nn.Parameter(torch.zeros(action_dim))
        self.critic = layer_init(nn.Linear(encoder.out_dim, 1), std=1.0)

    def act(
        self, obs: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions (with ``generator``); return (action, log-prob, value) per row."""
        features = self.encoder(obs)
        mean = self.actor_mean(features)
        noise = torch.randn(mean.shape, generator=generator)
        action = torch.addcmul(mean, self.actor_logstd.exp(), noise)
        # The standardised action is the noise itself, so the log-density needs no division
        # (the same value as ``gaussian_log_prob``, in a third of the tensor operations:
        # acting runs once per step, where torch's per-operation cost dominates).
        constant = self.actor_logstd.sum() + HALF_LOG_2PI * mean.shape[-1]
        logprob = noise.square().sum(-1).mul_(-0.5).sub_(constant)
        return action, logprob, self.critic(features).squeeze(-1)

    def evaluate(
        self, obs: dict[str, torch.Tensor], action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-prob of ``action``, entropy, value) per row, with gradients (for the update)."""
        features = self.encoder(obs)
        mean = self.actor_mean(features)
        log_std = self.actor_logstd.expand_as(mean)
        entropy = (0.5 + HALF_LOG_2PI + log_std).sum(-1)
        return (
            gaussian_log_prob(action, mean, log_std),
            entropy,
            self.critic(features).squeeze(-1),
        )

    def deterministic(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mean action (evaluation)."""
        return self.actor_mean(self.encoder(obs))


def to_tensors(observations: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack agents' observation dicts into row-first tensors (edge index shared, not stacked)."""
    first = observations[0]
    return {
        "vector": torch.as_tensor(np.stack([o["vector"] for o in observations])),
        "nodes": torch.as_tensor(np.stack([o["nodes"] for o in observations])),
        "edge_attr": torch.as_tensor(np.stack([o["edge_attr"] for o in observations])),
        "shared_edge_index": torch.as_tensor(first["edge_index"], dtype=torch.int64),
    }
