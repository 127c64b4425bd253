"""``driftloop demo``: replay 2013 through the closed loop on one machine (see
:mod:`driftloop.embedded.demo.replay` for the steps).

Modules::

    environment  demo-sized settings, the embedded platform, the inference API as a service
    traffic      a month's rows through the inference API, then their labels as feedback
    timeline     one line per month, the summary, the links
    replay       the steps, month by month, following each retrain the automation starts
    first_steps  ingest, features and the first champion's training, in a child process
"""

from driftloop.embedded.demo.replay import DemoOptions, run_demo
from driftloop.embedded.demo.timeline import DemoResult

__all__ = ["DemoOptions", "DemoResult", "run_demo"]
