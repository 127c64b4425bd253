"""The Machine Learning Lens as code: ``lens.yaml`` maps each of the lens's 78 best practices to
its status, the code that realises it and the tests that prove it.

* :mod:`.practices` — the canonical ids, pillars and titles (part of the package).
* :mod:`.document` — ``lens.yaml``: its schema, loaded strictly (duplicate keys, unknown fields).
* :mod:`.references` — do a named file, ``path::symbol`` or pytest node id exist (read, never run).
* :mod:`.check` — every problem of the file, one line each (``driftloop lens check``).
* :mod:`.report` — the scorecard with counts per pillar and status: Markdown, HTML, JSON, and the
  README section between ``<!-- lens:begin -->`` and ``<!-- lens:end -->``.
"""
