"""The embedded platform: everything ``driftloop up`` / ``down`` / ``demo`` run on one machine.

Modules::

    services   background processes (MLflow, Prefect server, worker) with pid/log files
    deploy     Prefect deployments from ``prefect.yaml`` + the work pool + the automations
    platform   up / down / status: services and deployments together
    demo/      ``driftloop demo``: replay of 2013 through the closed loop

Nothing is re-exported here: import from the module that owns a name.
"""
