"""The tabular net (:class:`driftloop.training.model.TabularNet`) in NumPy.

The weights are the ones training saved (``weights.npz`` beside torch's ``weights.pt``, the same
tensors; :meth:`NumpyNet.from_state` reads torch's parameter names). :meth:`NumpyNet.logits` is
the eval-mode forward pass in float32, as torch computes it (dropout is the identity):
embedding lookups, concatenation with the numeric block, ``Linear -> ReLU`` per hidden layer,
then the output layer. :meth:`NumpyNet.gradient` is its float64 twin with the gradient of the
output with respect to the net's input (the embedded categoricals and the numeric block), by
backpropagation through the ReLU layers: what integrated gradients integrates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

_EMBEDDING = re.compile(r"embeddings\.(\d+)\.weight")
_LINEAR = re.compile(r"mlp\.(\d+)\.(weight|bias)")


@dataclass(frozen=True)
class NumpyNet:
    """Embedding tables (``[cardinality, width]``) and linear layers (``weights[k]``:
    ``[in, out]``, the transpose of torch's ``Linear.weight``; ``biases[k]``: ``[out]``), in
    float32."""

    embeddings: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], n_numeric: int) -> NumpyNet:
        """The net of a torch ``state_dict`` saved as arrays. ValueError when the names or
        shapes do not make a TabularNet with ``n_numeric`` numeric inputs."""
        embeddings: dict[int, np.ndarray] = {}
        linear: dict[int, dict[str, np.ndarray]] = {}
        for key, value in state.items():
            if not np.isfinite(value).all():
                raise ValueError(f"tensor {key!r} of the saved weights holds NaN or inf")
            if match := _EMBEDDING.fullmatch(key):
                if np.ndim(value) != 2:
                    raise ValueError(f"embedding {key!r} is not a 2-D table")
                embeddings[int(match[1])] = np.asarray(value, dtype=np.float32)
            elif match := _LINEAR.fullmatch(key):
                linear.setdefault(int(match[1]), {})[match[2]] = np.asarray(value, np.float32)
            else:
                raise ValueError(f"unexpected tensor {key!r} in the saved weights")
        if sorted(embeddings) != list(range(len(embeddings))) or not linear:
            raise ValueError("the saved weights do not hold a TabularNet")
        tables = tuple(embeddings[j] for j in range(len(embeddings)))
        layers = [linear[i] for i in sorted(linear)]
        width = sum(t.shape[1] for t in tables) + n_numeric
        weights: list[np.ndarray] = []
        biases: list[np.ndarray] = []
        for k, layer in enumerate(layers):
            w, b = layer.get("weight"), layer.get("bias")
            if w is None or b is None or not _fits(w, b, width):
                raise ValueError(f"layer {k} of the saved weights does not fit width {width}")
            weights.append(np.ascontiguousarray(w.T))
            biases.append(b)
            width = w.shape[0]
        if width != 1:
            raise ValueError(f"the saved net ends in {width} outputs, not 1")
        return cls(tables, tuple(weights), tuple(biases))

    def embed(self, codes: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """``[n, sum of widths]``: each row's embedding vectors side by side."""
        parts = [table[codes[:, j]] for j, table in enumerate(self.embeddings)]
        return np.concatenate(parts, axis=1).astype(dtype, copy=False)

    def logits(self, codes: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        """float32 logit of P(late) per row (``codes`` int ``[n, n_cat]``, ``numeric`` float32
        ``[n, n_numeric]``)."""
        parts = [table[codes[:, j]] for j, table in enumerate(self.embeddings)]
        parts.append(numeric.astype(np.float32, copy=False))
        return self.forward(np.concatenate(parts, axis=1))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The logit per row of the net's inputs ``x`` (embedded categoricals and the numeric
        block side by side), in the precision of ``x`` and the weights."""
        h = x
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w
            h += b
            if k < last:
                np.maximum(h, 0.0, out=h)
        out: np.ndarray = h[:, 0]
        return out

    def as_float64(self) -> NumpyNet:
        """A float64 copy (attributions are computed in float64, as Captum is given them)."""
        return NumpyNet(
            tuple(t.astype(np.float64) for t in self.embeddings),
            tuple(w.astype(np.float64) for w in self.weights),
            tuple(b.astype(np.float64) for b in self.biases),
        )

    def gradient(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logit [m], d logit / d x [m, input width])`` of inputs ``x`` (the embedded
        categoricals and the numeric block side by side), in ``x``'s precision. ReLU's gradient
        at exactly 0 is 0, as torch's."""
        masks = []
        h = x
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if k < last:
                active = h > 0
                masks.append(active)
                h = np.where(active, h, 0.0)
        grad = np.broadcast_to(self.weights[last][:, 0], (len(x), self.weights[last].shape[0]))
        for k in range(last - 1, -1, -1):
            grad = (grad * masks[k]) @ self.weights[k].T
        return h[:, 0], np.ascontiguousarray(grad)


def _fits(weight: np.ndarray, bias: np.ndarray, width: int) -> bool:
    """A torch ``Linear`` weight ``[out, width]`` and its bias ``[out]``."""
    return weight.ndim == 2 and weight.shape[1] == width and bias.shape == weight.shape[:1]
