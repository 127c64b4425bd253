"""Training: torch tabular model, trainer, evaluation gate, MLflow pyfunc, tuning.

Modules (nothing is re-exported here: import from the module that owns a name)::

    inputs        training window + holdout month from the versioned data (point in time)
    model         the torch module; bundle: model + preprocessing saved together
    trainer       fit: device pick, AMP, checkpoints/resume, DDP
    job           the records passed between the steps of a run
    pipeline      prepare -> fit_and_log -> evaluate -> register; train_and_register
    evaluate_run  every scorer on the holdout, the gate, artifacts
    evaluation    metrics, baselines, calibration, slices, the gate's rules
    explain       permutation importance and plots
    pyfunc        the MLflow pyfunc flavour (the only training module that imports mlflow)
    lineage       a version's references and their checks; reproduce: retrain a version
    tuning        Optuna study with nested MLflow runs; ddp: the torchrun entry point
"""
