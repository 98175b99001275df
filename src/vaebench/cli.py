"""``vaebench <stage> <name>``: one subcommand per pipeline stage, a few lines each.

Every path comes from ``dvc.yaml`` as an argument; the logic lives in the
importable modules. The config is validated before any work starts.
"""
from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path


def _prepare(args, cfg):
    from vaebench.data import prepare_stage
    prepare_stage(cfg, args.name, args.raw, args.out)


def _train(args, cfg):
    from vaebench.train import train_stage
    train_stage(cfg, args.name, args.data, args.out, args.metrics, args.plots, args.figures)


def _loglik(args, cfg):
    from vaebench.evaluate.loglik import loglik_stage
    loglik_stage(cfg, args.name, args.models, args.data, args.out, args.plots)
def _robustness(args, cfg):
    from vaebench.evaluate.robustness import robustness_stage
    robustness_stage(cfg, args.name, args.models, args.data, args.out, args.plots)
def _disentangle(args, cfg):
    from vaebench.evaluate.disentangle import disentangle_stage
    disentangle_stage(cfg, args.name, args.models, args.data, args.raw, args.out, args.figures)


def _featurenet(args, cfg):
    from vaebench.evaluate.featurenet import featurenet_stage
    featurenet_stage(cfg, args.name, args.data, args.out, args.metrics)


def _samplequality(args, cfg):
    from vaebench.evaluate.samplequality import samplequality_stage
    samplequality_stage(cfg, args.name, args.models, args.featurenets, args.data, args.out)


def _report(args, cfg):
    from vaebench.report.stage import report_stage
    command = (f"vaebench report --metrics {args.metrics} --plots {args.plots} "
               f"--figures {args.figures} --figures-out {args.figures_out} --out {args.out}")
    report_stage(cfg, args.metrics, args.plots, args.figures, args.figures_out, args.out, command,
                 params=args.params)


def _mlflow_sync(args, cfg):
    from vaebench import mirror, tracking
    if args.best_effort and not tracking.reachable():   # warns, naming the replay command
        return
    out = mirror.sync(cfg, args.metrics, args.models, args.plots, args.figures, args.data,
                      args.report)
    print(f"mlflow-sync into {tracking.tracking_uri()}: mirrored {out['mirrored']} metrics "
          f"files; runs {out['runs_before']} -> {out['runs_after']}")


def _check(args, cfg):
    print(f"params OK: profile {cfg.profile}, {len(cfg.models)} models, seeds {cfg.seeds}")
    if args.out is not None:   # the gate the pipeline's other stages depend on (dvc.yaml)
        from vaebench import io
        io.write_json(args.out, {"valid": True})


def _code(args, cfg):
    """Runs without a validated config (no torch): reads params only for model -> family."""
    import yaml

    from vaebench import codedeps
    try:
        raw = yaml.load(args.params.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as err:
        raise codedeps.CodeDepsError(f"--params {args.params}: cannot read: {err}") from err
    models = raw.get("models") if isinstance(raw, dict) else None
    families = codedeps.model_families(models, str(args.params))
    dispatch = {name: p.get_default("func").__name__ for name, p in _subcommands().items()}
    written = codedeps.write_fingerprints(args.out, codedeps.fingerprints(dispatch, families))
    print(f"code fingerprints: {len(written)} files in {args.out}")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in build_parser()._actions
                 if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaebench", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    sub = parser.add_subparsers(dest="stage", required=True)

    p = sub.add_parser("prepare", help="generate / convert one dataset")
    p.add_argument("name")
    p.add_argument("--raw", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_prepare)

    p = sub.add_parser("train", help="train one model variant (every seed)")
    p.add_argument("name")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True)
    p.add_argument("--plots", type=Path, required=True)
    p.add_argument("--figures", type=Path, help="folder for reconstructions / samples PNGs")
    p.set_defaults(func=_train)

    # evaluation stages: one model's checkpoints -> metrics JSON + plot file(s)
    for stage, func, text, plots in (
            ("loglik", _loglik, "log p(x) at several K, ELBO, gaps (every seed)",
             "plot CSV (one row per K)"),
            ("robustness", _robustness, "corruptions, encoder Jacobian, attacks (every seed)",
             "directory of curve CSVs")):
        p = sub.add_parser(stage, help=text)
        p.add_argument("name")
        p.add_argument("--models", type=Path, required=True, help="models/<name> (checkpoints)")
        p.add_argument("--data", type=Path, required=True, help="data/prepared (all datasets)")
        p.add_argument("--out", type=Path, required=True, help="metrics JSON")
        p.add_argument("--plots", type=Path, required=True, help=plots)
        p.set_defaults(func=func)
    p = sub.add_parser("disentangle", help="disentanglement metrics, traversals, attribute "
                                           "vectors of one model (every seed)")
    p.add_argument("name")
    p.add_argument("--models", type=Path, required=True, help="models/<name> (checkpoints)")
    p.add_argument("--data", type=Path, required=True, help="data/prepared")
    p.add_argument("--raw", type=Path, required=True, help="data/raw (original dSprites file, if any)")
    p.add_argument("--out", type=Path, required=True, help="metrics JSON")
    p.add_argument("--figures", type=Path, required=True, help="figures folder")
    p.set_defaults(func=_disentangle)

    p = sub.add_parser("featurenet", help="train one dataset's classifier, the feature space "
                                          "of the sample-quality stage")
    p.add_argument("name", help="the dataset")
    p.add_argument("--data", type=Path, required=True, help="data/prepared/<dataset>")
    p.add_argument("--out", type=Path, required=True, help="folder for featurenet.pt")
    p.add_argument("--metrics", type=Path, required=True, help="its test accuracy (JSON)")
    p.set_defaults(func=_featurenet)

    p = sub.add_parser("samplequality", help="Fréchet distance and precision/recall of samples "
                                             "and reconstructions of one model (every seed)")
    p.add_argument("name")
    p.add_argument("--models", type=Path, required=True, help="models/<name> (checkpoints)")
    p.add_argument("--featurenets", type=Path, required=True,
                   help="models/featurenet (one folder per dataset)")
    p.add_argument("--data", type=Path, required=True, help="data/prepared (all datasets)")
    p.add_argument("--out", type=Path, required=True, help="metrics JSON")
    p.set_defaults(func=_samplequality)

    p = sub.add_parser("report", help="the report page comparing every variant (files only)")
    p.add_argument("--metrics", type=Path, required=True, help="reports/metrics (every stage)")
    p.add_argument("--plots", type=Path, required=True, help="reports/plots (curve CSVs)")
    p.add_argument("--figures", type=Path, required=True, help="reports/figures (stages' PNGs)")
    p.add_argument("--figures-out", type=Path, required=True, help="the report's own figures")
    p.add_argument("--out", type=Path, required=True,
                   help="folder for index.html, report.md, results.csv, headline.json")
    p.set_defaults(func=_report)

    p = sub.add_parser("mlflow-sync", help="re-mirror every stage's files into the MLflow "
                                           "store (idempotent; rebuilds a lost store)")
    for flag, default, text in (("--metrics", "reports/metrics", "metrics JSON of every stage"),
                                ("--models", "models", "checkpoints, models/<name>/seed<k>.pt"),
                                ("--plots", "reports/plots", "curve CSVs"),
                                ("--figures", "reports/figures", "figures of every stage"),
                                ("--data", "data/prepared", "prepared data (its meta.json)"),
                                ("--report", "reports", "the report's files")):
        p.add_argument(flag, type=Path, default=Path(default), help=f"{text} ({default})")
    p.add_argument("--best-effort", action="store_true",
                   help="a store that does not answer is a warning, not an error (the "
                        "pipeline's `mlflow` stage: an outage never fails an experiment; "
                        "replay later with `vaebench mlflow-sync`)")
    p.set_defaults(func=_mlflow_sync)

    p = sub.add_parser("check", help="validate params.yaml and exit")
    p.add_argument("--out", type=Path, help="write this (constant) file when params are valid")
    p.set_defaults(func=_check)

    p = sub.add_parser("code", help="write each stage's code fingerprint (its import closure's "
                                    "files and their md5), the deps of dvc.yaml's stages")
    p.add_argument("--out", type=Path, required=True, help="folder, reports/code")
    p.set_defaults(func=_code, config=False)
    return parser


def _errors() -> tuple[type[Exception], ...]:
    """The errors a stage reports in one line (imported after parsing: ``--help`` and a
    usage error pay for no torch)."""
    from vaebench.config import ConfigError
    from vaebench.data.base import DataError
    from vaebench.devices import DeviceError
    from vaebench.io import OutputError
    from vaebench.report import ReportError
    from vaebench.tracking import TrackingError
    return (ConfigError, DataError, DeviceError, FileNotFoundError, OutputError, ReportError,
            TrackingError)


def _fast_exit() -> None:
    """Spare the interpreter's shutdown the garbage collection of every imported module
    (torch, MLflow, scikit-learn, matplotlib: 1-3 CPU s per stage). The stage has
    written and closed its files and ended its MLflow runs; one collection now still
    finalises whatever garbage it left, and the objects alive now (the modules) are
    moved out of the collector's reach (``gc.freeze``), to be freed by the process exit."""
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "config", True):   # `code`: reads sources only, imports no torch
        from vaebench.codedeps import CodeDepsError
        try:
            args.func(args, None)
        except CodeDepsError as err:
            print(f"vaebench {args.stage}: error: {err}", file=sys.stderr)
            return 2
        return 0
    from vaebench.config import load_config
    errors = _errors()
    try:
        cfg = load_config(args.params)
        from vaebench.devices import use_threads
        use_threads(cfg.threads)     # params `threads`, recorded with every stage's results
        args.func(args, cfg)
    except errors as err:
        print(f"vaebench {args.stage}: error: {err}", file=sys.stderr)
        return 2
    finally:
        if argv is None:    # the command line's own process (not a caller's, e.g. a test)
            _fast_exit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
