"""CLI commands of the training area: train, tune, lineage, reproduce.

Tuned parameters: ``driftloop tune`` writes ``{state}/tuning/best_params.json``; ``driftloop train
--use-best-params`` (or DRIFTLOOP_TRAINING__USE_BEST_PARAMS=true) trains with them. Explicit
options (``--epochs``, ``--learning-rate`` ...) override both.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from driftloop.cli.common import month_range, progress
from driftloop.errors import NotFoundError
from driftloop.settings import get_settings

if TYPE_CHECKING:
    from driftloop.training.trainer import EpochStats  # lazy: start-up cost

FROM_HELP = "First month of the training window, YYYY-MM (the holdout is the month after --to)."
TO_HELP = "Last month of the training window, inclusive, YYYY-MM."


def _fmt(value: float) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.4f}"


def train(
    start: Annotated[str, typer.Option("--from", help=FROM_HELP)] = "2013-01",
    end: Annotated[str, typer.Option("--to", help=TO_HELP)] = "2013-03",
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs (settings default).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="AdamW learning rate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    device: Annotated[
        str | None, typer.Option(help="auto, cpu or cuda (settings default: auto).")
    ] = None,
    use_best_params: Annotated[
        bool, typer.Option("--use-best-params", help="Train with the parameters `tune` saved.")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its checkpoint.")
    ] = False,
    on: Annotated[
        Literal["local", "kubernetes"],
        typer.Option("--on", help="local (this machine) or kubernetes (a torchrun Job)."),
    ] = "local",
    nodes: Annotated[int, typer.Option(help="Kubernetes: training pods (nodes).")] = 1,
    gpus_per_node: Annotated[int, typer.Option(help="Kubernetes: GPUs (processes) per pod.")] = 0,
) -> None:
    """Train on the window, evaluate on the month after it against the naive baseline, a
    logistic regression and the champion, then register a version: alias champion (first
    model), challenger (beats the champion; canary weight 0) or none (tag says why)."""
    months = month_range(start, end)
    overrides = {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "device": device,
    }
    if on == "kubernetes":
        _train_on_kubernetes(months, overrides, use_best_params, nodes, gpus_per_node)
        return
    # lazy: start-up cost
    from driftloop.training.pipeline import evaluate, fit_and_log, prepare, register

    settings = get_settings()
    job = prepare(months[0], months[-1], settings, overrides, use_best_params or None)
    with progress(f"train {job.data.window}", total=job.params.epochs) as bar:
        task_id = bar.task_ids[0]

        def on_epoch(stats: EpochStats) -> None:
            bar.update(
                task_id,
                completed=stats.epoch,
                description=f"epoch {stats.epoch} val AUC {stats.val_auc:.4f}",
            )

        fitted = fit_and_log(job, settings, resume=resume, on_epoch=on_epoch)
        bar.update(task_id, completed=job.params.epochs, description="evaluating")
        result = register(job, fitted, evaluate(job, fitted, settings), settings)
    typer.echo(f"run {result.run_id} on {fitted.device} ({fitted.samples_per_s:.0f} samples/s)")
    typer.echo(f"holdout {job.data.holdout_month}: ROC AUC / log loss / Brier / ECE")
    for name, m in result.metrics.items():
        typer.echo(
            f"  {name:<9} {_fmt(m['roc_auc'])} / {_fmt(m['log_loss'])} / {_fmt(m['brier'])} / "
            f"{_fmt(m['ece'])}"
        )
    alias = result.alias or "no alias"
    typer.echo(f"registered {settings.mlflow.registered_model}:{result.version} -> {alias}")
    typer.echo(f"gate {result.gate}: {result.reason}")


def _train_on_kubernetes(
    months: list[str],
    overrides: dict[str, Any],
    use_best_params: bool,
    nodes: int,
    gpus_per_node: int,
) -> None:
    import time

    from driftloop.k8s import run_training_job  # lazy: start-up cost

    args = ["--from", months[0], "--to", months[-1]]
    for key, value in overrides.items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    if use_best_params:
        args.append("--use-best-params")
    name = f"train-{months[0]}-{months[-1]}-{int(time.time())}".replace("..", "-")
    result = run_training_job(
        get_settings(),
        name=name,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        command_args=args,
        log_sink=typer.echo,
    )
    typer.echo(
        f"job {result.namespace}/{result.name} finished in {result.duration_s:.0f} s on "
        f"{result.nodes} node(s) x {result.gpus_per_node} GPU(s)"
    )


def tune(
    start: Annotated[str, typer.Option("--from", help=FROM_HELP)] = "2013-01",
    end: Annotated[str, typer.Option("--to", help=TO_HELP)] = "2013-03",
    trials: Annotated[int, typer.Option(help="Trials to add to the study.")] = 10,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs per trial.")] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (same name resumes); default per window.")
    ] = None,
) -> None:
    """Optuna search (TPE + median pruning) on the window's validation split, one nested MLflow
    run per trial; saves the best parameters for `driftloop train --use-best-params`."""
    months = month_range(start, end)
    from driftloop.training.tuning import tune as run_tune  # lazy: start-up cost

    with progress(f"tune {months[0]}..{months[-1]}", total=trials) as bar:
        task_id = bar.task_ids[0]

        def on_trial(number: int, value: float, state: str) -> None:
            bar.update(task_id, advance=1, description=f"trial {number} {state} {_fmt(value)}")

        result = run_tune(
            months[0], months[-1], trials, study_name=study, epochs=epochs, on_trial=on_trial
        )
    typer.echo(
        f"study {result.study_name}: {result.trials_total} trials ({result.pruned} pruned); "
        f"best validation ROC AUC {_fmt(result.best_value)}"
    )
    for key, value in sorted(result.best_params.items()):
        typer.echo(f"  {key:<14} {value}")
    typer.echo(f"saved {result.best_params_path}; train with --use-best-params")


def lineage(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME:VERSION, @ALIAS or VERSION.")],
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Print the chain without resolving it.")
    ] = False,
) -> None:
    """Print a version's lineage (run, data revision + partition hashes, feature service, git
    commit, holdout metrics, champion compared with) and check each reference; exit 1 if one
    does not resolve."""
    from driftloop.training.lineage import lineage as build  # lazy: start-up cost

    record = build(ref, check=not no_check)
    for line in record.lines():
        typer.echo(line)
    if not record.ok:
        failed = [c.reference for c in record.checks if c.status == "failed"]
        raise NotFoundError(
            f"lineage of {record.model}:{record.version} does not resolve: {', '.join(failed)}"
        )


def reproduce(
    ref: Annotated[str, typer.Argument(help="Version to reproduce: VERSION, NAME:VERSION ...")],
) -> None:
    """Retrain a version from its recorded data revision and parameters and report how the
    holdout metrics differ (the reproduction is an MLflow run; nothing is registered)."""
    from driftloop.training.reproduce import reproduce as run_reproduce  # lazy: start-up cost

    with progress(f"reproduce {ref}") as bar:
        task_id = bar.task_ids[0]

        def on_epoch(stats: EpochStats) -> None:
            bar.update(task_id, description=f"epoch {stats.epoch} val AUC {stats.val_auc:.4f}")

        result = run_reproduce(ref, on_epoch=on_epoch)
    typer.echo(
        f"version {result.version} ({result.train_window}, data rev {result.data_rev[:10]}): "
        f"run {result.original_run_id} reproduced by {result.run_id}"
    )
    typer.echo(f"  {'metric':<10} {'recorded':>10} {'reproduced':>10} {'difference':>11}")
    for name, (before, after, diff) in result.differences.items():
        typer.echo(f"  {name:<10} {_fmt(before):>10} {_fmt(after):>10} {diff:>+11.2e}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("train")(train)
    app.command("tune")(tune)
    app.command("lineage")(lineage)
    app.command("reproduce")(reproduce)
