"""The torch tabular model: an embedding per categorical column, an MLP over numerics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class ModelConfig:
    """Architecture of :class:`TabularNet` (saved with the weights)."""

    cardinalities: list[int]
    n_numeric: int
    embedding_dim: int = 8
    hidden_sizes: list[int] = field(default_factory=lambda: [128, 64])
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**data)


def embedding_width(cardinality: int, max_dim: int) -> int:
    """Embedding width of a column: half its cardinality, at most ``max_dim``, at least 1."""
    return max(1, min(max_dim, (cardinality + 1) // 2))


class TabularNet(nn.Module):
    """Logit of P(late) from categorical codes and a numeric block."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, embedding_width(card, config.embedding_dim))
            for card in config.cardinalities
        )
        width = sum(embedding_width(c, config.embedding_dim) for c in config.cardinalities)
        width += config.n_numeric
        layers: list[nn.Module] = []
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, codes: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        parts = [emb(codes[:, j]) for j, emb in enumerate(self.embeddings)]
        parts.append(numeric)
        logits: torch.Tensor = self.mlp(torch.cat(parts, dim=1))
        return logits.squeeze(1)

    def _forward_eval(self, codes: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        """The eval-mode forward without module-call overhead (dropout is the identity)."""
        parts = [
            F.embedding(codes[:, j], cast(nn.Embedding, e).weight)
            for j, e in enumerate(self.embeddings)
        ]
        h = torch.cat([*parts, numeric], dim=1)
        linears = [m for m in self.mlp if isinstance(m, nn.Linear)]
        for layer in linears[:-1]:
            h = torch.relu(F.linear(h, layer.weight, layer.bias))
        return F.linear(h, linears[-1].weight, linears[-1].bias).squeeze(1)

    def predict_proba(self, codes: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        """P(late) per row as float64, without autograd (the fast path serving calls)."""
        device = next(iter(self.parameters())).device
        with torch.inference_mode():
            logits = self._forward_eval(
                torch.from_numpy(codes).to(device), torch.from_numpy(numeric).to(device)
            )
            return torch.sigmoid(logits.float()).cpu().numpy().astype(np.float64)
