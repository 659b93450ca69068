"""The training function on a GPU (CUDA + NCCL) next to the CPU (Gloo), on the same shards, in one run.

A GPU machine lent for a few minutes has no Spark and no network, so the check is split in three:

1. ``prepare`` (here, with Spark): simulate a market, build the panel and run ``pricing train``'s
   own path once to write its training shards; copy them and the workers' settings into a bundle,
   with what ``bench/gpu_check.sh`` needs to build Horovod there (its sdist, the cffi wheels).
2. ``device`` (on the GPU machine, plain PyTorch): for each fit, launch
   :func:`pricing.model.distributed.train_worker` under ``torchrun`` (what TorchDistributor's local
   mode runs), once with ``use_gpu=true`` (CUDA tensors, NCCL) and once on the CPU (Gloo), with the
   same seed; save every rank-0 result (weights, losses, samples/s, device) to one file.
3. ``evaluate`` (here, with Spark): load each trained state with :class:`LoadedModel` on the CPU (a
   GPU-trained model must score on CPU executors), predict the holdout, and compare each GPU fit
   with its CPU twin: elasticity MAE vs the simulator's truth, holdout WAPE, and how far apart the
   two fits' per-SKU elasticities are. Writes ``bench/results/gpu_training.json``.

``device`` also runs on a machine without a GPU (its ``use_gpu`` fits then fall back to the CPU):
that is how the script is checked before a GPU is spent on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

# name: (use_gpu, debias, overrides of the product's worker settings)
RUNS: dict[str, tuple[bool, bool, dict[str, Any]]] = {
    "cpu_naive": (False, False, {}),
    "gpu_naive": (True, False, {}),
    "cpu_debiased_laplace": (False, True, {"elasticity_interval": "laplace"}),
    "gpu_debiased_laplace": (True, True, {"elasticity_interval": "laplace"}),
    # Throughput only: 16x fewer, larger steps change the fit.
    "cpu_naive_batch4096": (False, False, {"batch_size": 4096}),
    "gpu_naive_batch4096": (True, False, {"batch_size": 4096}),
}


def prepare(args: argparse.Namespace) -> None:
    """Write the bundle: training shards, the workers' settings, and keep the holdout and truth here."""
    import secrets

    from elasticity_nuisance import network_sizes
    from run_config import market_overrides, run_config, simulated_panel

    from pricing.lakehouse.tables import Lakehouse
    from pricing.model.distributed import read_shard
    from pricing.model.train import model_config, run_train, worker_spec
    from pricing.platform.spark import build_spark
    from pricing.sim.truth import training_vs_truth

    os.environ.setdefault("PRICING_PII_SALT", secrets.token_hex(24))
    work, bundle = Path(args.workdir).resolve(), Path(args.bundle)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(bundle, ignore_errors=True)
    cfg = run_config(work, *market_overrides(args.skus, args.days, args.seed), *args.overrides)
    spark = build_spark(cfg.spark)
    lakehouse, truth = simulated_panel(spark, cfg, work)
    report = run_train(spark, Lakehouse.at(spark, lakehouse), cfg.train, cfg.features)
    training_vs_truth(spark, report, lakehouse, truth, cfg.train.tracking_uri)
    data_dir = Path(lakehouse, "model_data", report.run_id)
    shutil.copytree(data_dir / "train", bundle / "train", ignore=shutil.ignore_patterns("_*", ".*"))
    spark.read.parquet(str(data_dir / "holdout")).write.mode("overwrite").parquet(str(work / "holdout"))
    net = network_sizes(read_shard(str(bundle / "train"), 0, 1), cfg)
    spec = worker_spec(cfg.train, net, "train")
    (bundle / "spec.json").write_text(json.dumps(asdict(spec), indent=2))
    (work / "prepared.json").write_text(
        json.dumps(
            {"truth": truth, "product_metrics": report.metrics, "config": model_config(cfg.train, net)}
        )
    )
    # For the Horovod build there (no network): its sdist, and the cffi its setup.py asks for.
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    subprocess.run([*pip, "--no-binary", ":all:", "-d", str(bundle), "horovod==0.28.1"], check=True)
    platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64")]
    subprocess.run(
        [*pip, "--only-binary", ":all:", f"--python-version={args.device_python}", *platforms,
         "-d", str(bundle / "wheels"), "cffi", "pycparser"],
        check=True,
    )  # fmt: skip
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    print(f"bundle {bundle}: {size / 1e6:.1f} MB; holdout and truth under {work}", flush=True)


def worker(args: argparse.Namespace) -> None:
    """One torchrun process: train on the bundle's shards; rank 0 saves the result."""
    import torch.distributed as dist

    from pricing.model.distributed import WorkerSpec, train_worker

    spec = WorkerSpec(**json.loads(Path(args.spec).read_text()))
    started = time.perf_counter()
    result = train_worker(spec)
    result["seconds"] = time.perf_counter() - started
    if result["rank"] == 0:
        torch.save(result, args.result)
    if dist.is_initialized():
        dist.destroy_process_group()


def run_row(result: dict[str, Any]) -> dict[str, Any]:
    """What one worker result reports: device, speed and losses."""
    return {
        "device": result["device"],
        "samples_per_s": result["samples_per_s"],
        "train_s": result["seconds"],
        "first_loss": result["losses"][0],
        "last_loss": result["losses"][-1],
        "nuisance_last_loss": result["nuisance_losses"][-1] if result["nuisance_losses"] else None,
    }


def device(args: argparse.Namespace) -> None:
    """Every run of RUNS under torchrun, one after another; results into one file under ``--out``."""
    out, bundle = Path(args.out), Path(args.bundle).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = json.loads((bundle / "spec.json").read_text())
    base["train_dir"] = str(bundle / "train")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(
        f"torch {torch.__version__}, cuda {torch.version.cuda}, gpu {gpu}, cpus {os.cpu_count()}", flush=True
    )
    results: dict[str, Any] = {}
    summary: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": gpu, "runs": {}}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    for name in args.runs.split(","):
        use_gpu, debias, overrides = RUNS[name]
        spec_file, result_file = out / f"{name}.spec.json", out / f"{name}.result.pt"
        spec_file.write_text(json.dumps({**base, **overrides, "use_gpu": use_gpu, "debias": debias}))
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
            __file__, "worker", "--spec", str(spec_file), "--result", str(result_file),
        ]  # fmt: skip
        started = time.perf_counter()
        completed = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        spec_file.unlink()
        if completed.returncode != 0:
            print(completed.stdout[-3000:], completed.stderr[-6000:], sep="\n", flush=True)
            summary["runs"][name] = {"error": completed.stderr[-2000:], "wall_s": wall}
            continue
        result = torch.load(result_file, weights_only=False)
        result_file.unlink()
        results[name] = result
        row = {**run_row(result), "wall_s": wall}
        summary["runs"][name] = row
        print(f"{name:>22}: {json.dumps(row)}", flush=True)
    torch.save(results, out / "gpu_training_states.pt")
    (out / "gpu_training_device.json").write_text(json.dumps(summary, indent=2))
    print(f"{'run':>22} {'device':>8} {'samples/s':>11} {'train s':>8} {'loss first -> last':>22}")
    for name, row in summary["runs"].items():
        if "error" in row:
            print(f"{name:>22} FAILED")
            continue
        print(
            f"{name:>22} {row['device']:>8} {row['samples_per_s']:>11,.0f} {row['train_s']:>8.1f}"
            f" {row['first_loss']:>10.4f} -> {row['last_loss']:.4f}"
        )


def evaluate(args: argparse.Namespace) -> None:
    """Score each trained state on the CPU; compare every GPU fit with its CPU twin."""
    import secrets

    from pyspark.sql import functions as F
    from results_io import write_results
    from run_config import run_config

    from pricing.model.predict import LoadedModel
    from pricing.model.train import evaluate as predict_holdout
    from pricing.model.train import sku_elasticities, wape
    from pricing.platform.spark import build_spark
    from pricing.sim.truth import elasticity_error

    os.environ.setdefault("PRICING_PII_SALT", secrets.token_hex(24))
    work, device_out = Path(args.workdir).resolve(), Path(args.device_out)
    prepared = json.loads((work / "prepared.json").read_text())
    summary = json.loads((device_out / "gpu_training_device.json").read_text())
    states = torch.load(device_out / "gpu_training_states.pt", weights_only=False)
    horovod = device_out / "horovod_gpu.result.pt"
    if horovod.exists():  # bench/gpu_check.sh's Horovod run: the naive fit, under horovodrun, on the GPU
        result = torch.load(horovod, weights_only=False)
        states["horovod_gpu_naive"] = result
        summary["runs"]["horovod_gpu_naive"] = run_row(result)
    cfg = run_config(work)
    spark = build_spark(cfg.spark)
    holdout = spark.read.parquet(str(work / "holdout"))
    params = spark.read.parquet(f"{prepared['truth']}/sku_params")
    elasticities: dict[str, Any] = {}
    for name, result in states.items():
        _, debias, overrides = RUNS[name.removeprefix("horovod_")]
        config = {
            **prepared["config"],
            "debias": debias,
            **{k: v for k, v in overrides.items() if k != "batch_size"},
        }
        predictions = predict_holdout(holdout, lambda s=result["state"], c=config: LoadedModel(s, c)).cache()
        per_sku = sku_elasticities(predictions).cache()
        errors = elasticity_error(per_sku, params) or {}
        summary["runs"][name].update(
            holdout_wape=wape(predictions, "expected_units"),
            elasticity_mae=errors.get("elasticity_mae"),
            elasticity_bias=errors.get("elasticity_bias"),
            elasticity_interval_coverage=errors.get("elasticity_interval_coverage"),
        )
        elasticities[name] = per_sku.select("sku", F.col("elasticity").alias(name))
        print(f"{name}: {json.dumps(summary['runs'][name])}", flush=True)
    pairs = {}
    for name in states:
        twin = name.removeprefix("horovod_").replace("gpu_", "cpu_", 1)
        if "gpu_" in name and twin in states:
            joined = elasticities[name].join(elasticities[twin], "sku")
            row = joined.agg(
                F.avg(F.abs(F.col(name) - F.col(twin))), F.max(F.abs(F.col(name) - F.col(twin)))
            ).first()
            gpu_row, cpu_row = summary["runs"][name], summary["runs"][twin]
            pairs[name] = {
                "speedup_samples_per_s": gpu_row["samples_per_s"] / cpu_row["samples_per_s"],
                "elasticity_mean_abs_gap_vs_cpu": row[0],
                "elasticity_max_abs_gap_vs_cpu": row[1],
                "elasticity_mae_gpu_minus_cpu": (gpu_row["elasticity_mae"] or 0)
                - (cpu_row["elasticity_mae"] or 0),
                "holdout_wape_gpu_over_cpu": gpu_row["holdout_wape"] / cpu_row["holdout_wape"],
            }
    results = {**summary, "gpu_vs_cpu": pairs, "product_run_metrics": prepared["product_metrics"]}
    write_results(results, args.out, ["gpu_vs_cpu"], gpu=summary["gpu"], device_torch=summary["torch"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare", help="here: simulate, train once, write the bundle")
    p.add_argument("--bundle", default=".gpu")
    p.add_argument("--workdir", default="bench/.gpu-work")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--skus", type=int, default=200)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--device-python", default="3.12", help="the GPU machine's Python, for its wheels")
    p.add_argument("overrides", nargs="*", help="extra key=value configuration overrides")
    d = commands.add_parser("device", help="on the GPU machine: every run under torchrun")
    d.add_argument("--bundle", default=".gpu")
    d.add_argument("--out", default=os.environ.get("OUT", "bench/.gpu-out"))
    d.add_argument("--runs", default=",".join(RUNS))
    w = commands.add_parser("worker", help="(internal) one torchrun process")
    w.add_argument("--spec", required=True)
    w.add_argument("--result", required=True)
    e = commands.add_parser("evaluate", help="here: score the device's states, compare GPU with CPU")
    e.add_argument("--workdir", default="bench/.gpu-work")
    e.add_argument("--device-out", required=True)
    e.add_argument("--out", default="bench/results/gpu_training.json")
    args = parser.parse_args()
    {"prepare": prepare, "device": device, "worker": worker, "evaluate": evaluate}[args.command](args)


if __name__ == "__main__":
    main()
