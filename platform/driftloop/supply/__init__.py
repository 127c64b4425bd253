"""Supply chain: what the platform is built from, and whether it may be.

Modules (run them as ``python -m driftloop.supply licences|vulns|sbom``)::

    spdx      SPDX licence expressions: parse, and decide against an allow-list
    licences  the licence allow-list check of every installed distribution
              (policy: requirements/licences.yaml)
    vulns     the vulnerability audit of the pinned set (pip-audit; ignores with reason and
              expiry: requirements/vuln-ignore.yaml)
    sbom      a CycloneDX 1.5 SBOM of a Python environment (standard library only, so it also
              runs inside a built image: scripts/sbom.sh)
    artifacts an SBOM logged to MLflow as the artifact of a run ``build <image>`` (optional)
"""
