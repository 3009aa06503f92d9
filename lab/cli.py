"""The ``lab`` command: ``list``, ``params``, ``run``, ``runs``, ``detectors`` and ``data get``;
for EDF nights ``stage``, ``train``, ``predict`` and ``explain``; ``stream`` for Kafka.

Examples
--------
>>> main(["params", "00"])  # doctest: +ELLIPSIS
name ...
0
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from lab import config
from lab.experiments import ExperimentError, find_experiments, load_experiment
from lab.notebook import ParameterError, find_notebooks, read_notebook
from lab.runner import (
    LabError,
    RunInterrupted,
    format_runs,
    format_times,
    list_runs,
    plan,
    run,
    skip_unused_imports,
)

__all__ = ["main", "parse_pairs"]

#: Exit status of ``lab run`` when every run completed but one could not be logged to MLflow
#: (1: a run failed; 2: a usage error; 130 and 143: Ctrl-C and SIGTERM).
EXIT_UNTRACKED = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lab",
        description="Run the lab's notebooks headless, with typed parameters and tracking.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="numbered notebooks and named experiments")

    pp = sub.add_parser("params", help="a notebook's parameters: name, type, default, help")
    pp.add_argument("target", help="notebook number, notebook path or experiment name")

    pr = sub.add_parser("run", help="execute notebooks headless and record the runs")
    pr.add_argument("target", help="notebook number (01), notebook path, experiment name, or 'all'")
    pr.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                    help="set a parameter (repeatable); parsed to its declared type")
    pr.add_argument("-f", "--params-file", metavar="FILE", help="YAML mapping of parameters")
    pr.add_argument("--smoke", action="store_true",
                    help="apply the notebook's smoke parameters (tiny data, one epoch)")
    pr.add_argument("--out", metavar="DIR", default=None,
                    help=f"runs directory (default: {config.RUNS_DIR})")
    pr.add_argument("--workers", type=int, default=1, metavar="N",
                    help="run a grid in N parallel processes")
    pr.add_argument("--dask", metavar="ADDRESS", default=None,
                    help=f"run on an existing dask.distributed scheduler (or ${config.DASK_ENV})")
    pr.add_argument("--show-code", action="store_true", help="keep code cells in report.html")

    sub.add_parser("detectors", help="the registered detectors: name, class, default threshold")

    ps = sub.add_parser("runs", help="table of past runs")
    ps.add_argument("name", nargs="?", help="only this experiment")
    ps.add_argument("--out", metavar="DIR", default=None, help="runs directory")

    pd_ = sub.add_parser("data", help="fetch a labelled benchmark into data/")
    dsub = pd_.add_subparsers(dest="data_command", required=True)
    pg = dsub.add_parser("get", help="download NAB, SKAB or the UCR anomaly files, checked")
    pg.add_argument("name", choices=["nab", "skab", "ucr", "ucr_anomaly"])
    pg.add_argument("--dest", metavar="DIR", default=None,
                    help=f"folder that receives it (default: {config.REPO_ROOT / 'data'})")
    pg.add_argument("--url", default=None,
                    help="another place for the same archive: URL, file:// URL or local zip")
    pg.add_argument("--force", action="store_true", help="replace a copy already there")
    pg.add_argument("--series", action="append", default=None, metavar="ID",
                    help="ucr: archive series number to convert (repeatable; 'all'; "
                         "default 135)")
    from lab.stream.cli import add_stream_parser

    add_stream_parser(sub)
    _edf_parsers(sub)
    return p


def _edf_parsers(sub) -> None:
    """``lab stage``, ``train``, ``predict`` and ``explain``: EDF nights in, scores out."""
    default_detector = config.DEFAULT_EDF_DETECTOR
    runs_help = f"runs directory holding the MLflow store (default: {config.RUNS_DIR})"
    pg = sub.add_parser("stage", help="EDF files to Parquet, one partition per night and rate",
                        description="Stage EDF files (<YYYYMMDD_HHMMSS>_<kind>.edf) as Parquet: "
                        "OUTPUT/night=<id>/rate=<Hz>/part.parquet. Staged nights are skipped "
                        "unless --force; unreadable files go to OUTPUT/quarantine/ with a "
                        ".reason.txt.")
    pg.add_argument("input", help="folder of the EDF files")
    pg.add_argument("output", help="staged store (created)")
    pg.add_argument("--force", action="store_true", help="restage nights already staged")

    pt = sub.add_parser("train", help="fit a detector on staged nights; log an MLflow run",
                        description="Fit a registered detector (lab detectors) on the staged "
                        "nights' 1 Hz model frames and log an MLflow run with its parameters, "
                        "training metrics and the model as an artefact. Prints the run id.")
    pt.add_argument("staged", help="staged store (lab stage)")
    pt.add_argument("--detector", default=default_detector,
                    help=f"registered detector name (default: {default_detector}, the best on "
                    "the generated nights in notebook 06)")
    pt.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                    help="detector setting (repeatable), e.g. -p z_threshold=12")
    pt.add_argument("--nights", default="*", metavar="PATTERN",
                    help="shell pattern(s) of night ids, comma-separated (default: all)")
    pt.add_argument("--channels", default=None, metavar="A,B",
                    help="channels to use (default: all of the first night)")
    pt.add_argument("--runs", metavar="DIR", default=None, help=runs_help)

    pd_ = sub.add_parser("predict", help="score staged nights with a trained model by run id",
                         description="Load the model of a `lab train` run from its MLflow "
                         "artefacts, score the matching nights, write OUTPUT/night=<id>/"
                         "scores.parquet and OUTPUT/episodes.parquet, and log a prediction run.")
    pd_.add_argument("--run-id", required=True, metavar="ID", help="MLflow run id of lab train")
    pd_.add_argument("--pattern", default="*",
                     help="shell pattern(s) of night ids, e.g. '202012*' (default: all)")
    pd_.add_argument("staged", help="staged store (lab stage)")
    pd_.add_argument("output", help="folder for the scores")
    pd_.add_argument("--runs", metavar="DIR", default=None, help=runs_help)

    pe = sub.add_parser("explain", help="Dash app: signals, scores, episodes and true events",
                        description="Serve the explain app on 127.0.0.1: pick a prediction run "
                        "and a night, zoom over the signals with the score, threshold, "
                        "detected episodes and true events; click an episode to zoom to it.")
    pe.add_argument("--run-id", default=None, metavar="ID",
                    help="prediction run to open first (default: the latest)")
    pe.add_argument("--port", type=int, default=8050, help="port on 127.0.0.1 (default 8050)")
    pe.add_argument("--runs", metavar="DIR", default=None, help=runs_help)


def _param_value(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _cmd_edf(args: argparse.Namespace) -> int:
    from lab import edf_workflow as wf

    if args.command == "stage":
        summary = wf.stage(args.input, args.output, force=args.force, progress=True)
        for night in summary.staged:
            print(f"staged   {night}")
        for name in summary.quarantined:
            print(f"quarantined {name} (see {Path(args.output) / 'quarantine' / name}"
                  ".reason.txt)")
        print(summary)
        return 0
    if args.command == "train":
        params = {k: _param_value(v) for k, v in parse_pairs(args.param).items()}
        channels = args.channels.split(",") if args.channels else None
        run_id = wf.train(args.staged, detector=args.detector, params=params,
                          nights=args.nights, channels=channels, runs_dir=args.runs,
                          progress=True)
        print(run_id)
        return 0
    if args.command == "predict":
        pred_id, episodes = wf.predict(args.run_id, args.staged, args.output,
                                       pattern=args.pattern, runs_dir=args.runs, progress=True)
        import json

        meta = json.loads((Path(args.output) / "prediction.json").read_text())
        print(f"scored {len(meta['nights'])} nights: {', '.join(meta['nights'])}")
        print(f"worst episodes (of {len(episodes)}):")
        for row in episodes.head(10).itertuples(index=False):
            print(f"  {row.night}  {row.start:%H:%M:%S}-{row.end:%H:%M:%S}  score {row.peak:8.1f}"
                  f"  {row.channels}")
        print(f"prediction run {pred_id} (model run {args.run_id}); scores in {args.output}")
        return 0
    from lab.explain_app import serve

    serve(run_id=args.run_id, port=args.port, runs_dir=args.runs)
    return 0


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``-p NAME=VALUE`` arguments as a dict of strings (``lab run`` and ``lab stream score``).

    Parameters
    ----------
    pairs : list of str
        Each ``NAME=VALUE``; the value may be empty or hold ``=``.

    Returns
    -------
    dict of str -> str

    Raises
    ------
    LabError
        On a pair without ``=`` or with an empty name.

    Examples
    --------
    >>> parse_pairs(["epochs=3", "out=a=b"])
    {'epochs': '3', 'out': 'a=b'}
    """
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise LabError(f"-p {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def _cmd_list() -> int:
    notebooks = find_notebooks(config.NOTEBOOKS_DIR)
    print("notebooks:")
    for number, path in notebooks.items():
        try:
            desc = read_notebook(path).description
        except ParameterError as exc:
            desc = f"(invalid: {exc})"
        print(f"  {number}  {path.name:<32} {desc}")
    print("experiments:")
    for name, path in find_experiments(config.EXPERIMENTS_DIR).items():
        try:
            exp = load_experiment(path)
            grid = f" [grid: {' x '.join(f'{k}({len(v)})' for k, v in exp.grid.items())}]" if exp.grid else ""
            desc = f"notebook {exp.notebook}: {exp.description}{grid}"
        except ExperimentError as exc:
            desc = f"(invalid: {exc})"
        print(f"  {name:<36} {desc}")
    return 0


def _cmd_params(target: str) -> int:
    specs = plan(target)
    seen = set()
    for spec in specs:
        nb = spec.notebook
        if nb.path in seen:
            continue
        seen.add(nb.path)
        if len(specs) > 1 or spec.parameters:
            print(f"# {nb.path.name}" + (f" (experiment {spec.experiment})" if spec.parameters else ""))
        rows = [(p.name, p.type, repr(spec.resolved_parameters()[p.name]), p.help)
                for p in nb.params.values()]
        header = ("name", "type", "default", "help")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
        for r in [header, *rows]:
            print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip())
        if nb.smoke:
            print("smoke: " + ", ".join(f"{k}={v!r}" for k, v in nb.smoke.items()))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    # This process is lab's own: papermill (through jsonschema) then loads 1.5 s faster.
    skip_unused_imports()
    specs = plan(args.target, parse_pairs(args.param), args.params_file,
                 smoke=args.smoke, show_code=args.show_code)
    out = Path(args.out) if args.out else config.RUNS_DIR
    results = run(specs, out, workers=args.workers, dask=args.dask,
                  echo=lambda msg: print(msg, file=sys.stderr))
    failed = [r for r in results if r.status != "completed"]
    untracked = [r for r in results if r.tracking_error]
    print("reports:")
    for r in results:
        print(f"  {r.status:<10} {r.run_dir / 'report.html'}")
    print(format_times(results))
    for r in failed:
        print(f"lab: run failed: {r.spec.label()}: {r.error} (partial notebook: "
              f"{r.run_dir / 'notebook.ipynb'})", file=sys.stderr)
    for r in untracked:
        print(f"lab: run not logged to MLflow: {r.run_dir}: {r.tracking_error}", file=sys.stderr)
    return 1 if failed else EXIT_UNTRACKED if untracked else 0


def _cmd_runs(name: str | None, out: str | None) -> int:
    rows = list_runs(out, name)
    if name and not rows:
        names = sorted({r["experiment"] for r in list_runs(out)})
        if names:
            raise LabError(f"no runs named {name!r} in {out or config.RUNS_DIR}; "
                           f"runs exist for: {', '.join(names)}")
    print(format_runs(rows))
    return 0


def _cmd_detectors() -> int:
    from lab import kernel_output
    from lab.models import detector_table

    kernel_output.install()  # importing mscred and betsi starts TensorFlow, which talks on fd 2

    table = detector_table()
    width = table["name"].str.len().max()
    cls_width = table["class"].str.len().max()
    for row in table.itertuples(index=False):
        print(f"{row.name:<{width}}  {row[1]:<{cls_width}}  {row.threshold:<9}  {row.summary}")
    print("\nBuild one with lab.models.get_detector(name, **params); see docs/detectors.md.")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from lab.datasets.download import UCR_SERIES, DownloadError, get_data

    series = UCR_SERIES if not args.series else None if "all" in args.series else args.series
    try:
        target = get_data(args.name, args.dest, url=args.url, force=args.force, series=series)
    except (DownloadError, FileExistsError, ValueError) as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
    print(target)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lab`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "params":
            return _cmd_params(args.target)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "runs":
            return _cmd_runs(args.name, args.out)
        if args.command == "detectors":
            return _cmd_detectors()
        if args.command == "data":
            return _cmd_data(args)
        if args.command == "stream":
            from lab.stream.cli import run_stream

            return run_stream(args)
        if args.command in ("stage", "train", "predict", "explain"):
            return _cmd_edf(args)
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # RunInterrupted, or a signal between runs
        signum = getattr(exc, "signum", signal.SIGINT)
        what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
        where = f": run left at {exc}" if isinstance(exc, RunInterrupted) else ""
        print(f"lab: {what}{where}", file=sys.stderr)
        return 128 + signum
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
