"""HTTP routes of the inference API, thin wiring over :class:`serving.dataplane.DataPlane`.

* :mod:`.inference`: OIP v2 server/model metadata, health and readiness, inference
* :mod:`.feedback`: ground-truth labels for earlier predictions
* :mod:`.admin`: rollout state, audit log, canary weight, promote, rollback (admin scope)
* :mod:`.ops`: Prometheus metrics
* :mod:`.deps`: typed dependencies (components, settings, scope check, request body)
* :mod:`.errors`: the one place where exceptions become HTTP answers
* :mod:`.openapi`: error responses, documented request bodies and the OpenAPI document

Only :mod:`serving.app` and this package import FastAPI/Starlette (an import-linter contract).
"""
