"""Model registry (MLflow, aliases only) — the MLflow adapter package.

Modules (nothing is re-exported here: import from the module that owns a name)::

    client     the one ``MlflowClient`` adapter: reads (versions, aliases, snapshot), version
               registration, run-level reads/writes, model loading; raw alias/tag writes are
               private to this package
    promotion  the one writer of aliases and canary weight/mode/rollout tags, each change audited
    tracking   the fluent tracking API of training runs
    description  each version's description and standing tags (the "why" in MLflow's UI)
    json_tags  large JSON version tags as run artifacts behind a short pointer tag
"""

from driftloop.lazy_torch import defer_torch

# before MLflow's first REST request: it loads feast's header-provider plugin, and feast would
# import torch eagerly (see driftloop.lazy_torch)
defer_torch()
