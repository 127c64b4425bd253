"""Feast without torch until a tensor is asked for.

Feast 0.67's ``feast.torch_wrapper`` runs ``import torch`` when it is imported, whenever torch is
installed, for its ``to_tensor`` helpers (``RetrievalJob.to_tensor``, ``OnlineResponse.
to_tensor``, the RAG retriever), none of which driftloop calls. :func:`defer_torch` installs,
before feast is first imported, a module of the same name and API whose :func:`get_torch`
imports torch when it is called: those helpers work as before, and nothing else loads torch.

Two ways feast gets imported, so two callers:

- :mod:`driftloop.features` reads features through feast (serving's online lookup: +213 MB RSS
  and about a second of start-up, in a process that otherwise runs without torch);
- :mod:`driftloop.registry`, because feast 0.67 also registers an MLflow
  ``request_header_provider`` entry point: MLflow's REST client loads every such plugin on its
  first request, so any process that talks to the MLflow server imports feast, and with it
  torch (+210 MB in the demo's process, which reads no features and trains nothing).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

MODULE = "feast.torch_wrapper"


def _get_torch() -> Any:
    """torch, imported now (what feast's ``get_torch`` returns)."""
    return importlib.import_module("torch")


def _module_getattr(name: str) -> Any:
    if name == "TORCH_AVAILABLE":
        return importlib.util.find_spec("torch") is not None
    raise AttributeError(f"module {MODULE!r} has no attribute {name!r}")


def defer_torch() -> bool:
    """Install the lazy ``feast.torch_wrapper``; False when feast already imported its own."""
    if MODULE in sys.modules:
        return sys.modules[MODULE].__dict__.get("get_torch") is _get_torch
    module = types.ModuleType(MODULE, __doc__)
    module.get_torch = _get_torch  # type: ignore[attr-defined]
    module.__getattr__ = _module_getattr  # type: ignore[method-assign]
    sys.modules[MODULE] = module
    return True
