"""The closed loop: drift verdict -> retrain trigger (guards, ledger, Prefect event) ->
automation -> retrain -> canary analysis -> promote or roll back.

Modules::

    ledger       retrain ledger and its guards (cooldown, daily budget, de-duplication)
    trigger      the monitor's verdict -> ``driftloop.drift.detected`` event, default window
    automations  the Prefect automation and monitor schedule, declared in the repo
    rollout      automatic canary analysis: live numbers per variant -> promote or roll back

Nothing is re-exported here: import from the module that owns a name.
"""
