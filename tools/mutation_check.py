"""Does each chapter fail when a formula it shows is 5 % wrong? Run it with the formula
broken and see.

    python tools/mutation_check.py sampling solvers flow_matching [--only NAME ...]

For every mutation listed below for a chapter, the package is copied to a temporary
directory, one expression in it is replaced by the same expression 5 % off, and the
chapter is executed (nbclient, in its own directory) with that copy first on the import
path, until its first failing cell. A mutation the chapter survives is a formula whose
checks cannot see a 5 % error: the script prints it and exits 1. The checkout's package
is never touched, so other processes that import ddpm_lite are not affected.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]

# chapter -> [(name, file in ddpm_lite, the expression, the same 5 % off)]
MUTATIONS = {
    "sampling": [
        (
            "ddim_update: x0's coefficient",
            "sampling.py",
            "x_prev = torch.sqrt(alpha_bar_prev) * x0_pred",
            "x_prev = 1.05 * torch.sqrt(alpha_bar_prev) * x0_pred",
        ),
        (
            "ddim_update: sigma_ts",
            "sampling.py",
            "sigma_ts = eta * torch.sqrt(",
            "sigma_ts = 1.05 * eta * torch.sqrt(",
        ),
        (
            "ddpm_update: the clipped mean (posterior_mean)",
            "diffusion.py",
            "return coef_x0 * x0 + coef_xt * xt",
            "return 1.05 * coef_x0 * x0 + coef_xt * xt",
        ),
        (
            "ddpm_update: the mean (model_mean)",
            "diffusion.py",
            "return (xt - beta / torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(1 - beta)",
            "return (xt - 1.05 * beta / torch.sqrt(1 - alpha_bar) * eps) "
            "/ torch.sqrt(1 - beta)",
        ),
        (
            "ddpm_update: sigma_t",
            "sampling.py",
            "sigma = torch.exp(0.5 * p_log_variance(schedule, xt, t, variance))",
            "sigma = 1.05 * torch.exp(0.5 * p_log_variance(schedule, xt, t, variance))",
        ),
    ],
    "solvers": [
        (
            "dpm_solver_update: the exact part",
            "solvers.py",
            "return (std_s / std_t) * xt - alpha_s * phi_1 * m0",
            "return 1.05 * (std_s / std_t) * xt - alpha_s * phi_1 * m0",
        ),
        (
            "dpm_solver_update: 2M's correction",
            "solvers.py",
            "* (m0 + 0.5 * d1_0)",
            "* (m0 + 0.525 * d1_0)",
        ),
        (
            "dpm_solver_update: 3M's second difference",
            "solvers.py",
            "- alpha_s * phi_3 * d2",
            "- 1.05 * alpha_s * phi_3 * d2",
        ),
        (
            "heun_update: the mean of the slopes",
            "solvers.py",
            "0.5 * (eps_t + eps_s)",
            "0.525 * (eps_t + eps_s)",
        ),
        (
            "solver_timesteps: the log-SNR grid's end",
            "solvers.py",
            "float(key[t_start]), float(key[0]), num_steps, dtype=torch.float64",
            "float(key[t_start]), 1.05 * float(key[0]), num_steps, dtype=torch.float64",
        ),
    ],
    "flow_matching": [
        (
            "target_coefficients: v",
            "objectives.py",
            '"v": (-b, a),',
            '"v": (-1.05 * b, a),',
        ),
        (
            "x0_eps_from_prediction: the determinant",
            "objectives.py",
            "det = a * d - b * c",
            "det = 1.05 * (a * d - b * c)",
        ),
        (
            "loss_weight: flow",
            "objectives.py",
            '"flow": lambda: (1 + 1 / torch.sqrt(snr)) ** 2,',
            '"flow": lambda: 1.05 * (1 + 1 / torch.sqrt(snr)) ** 2,',
        ),
        (
            "vp_to_straight: r_t",
            "objectives.py",
            "return xt / (a + b), b / (a + b)",
            "return xt / (a + b), 1.05 * b / (a + b)",
        ),
        (
            "exact_velocity_model",
            "toy.py",
            "out[rows] = ((xs - x0_mean) / time).to(x.dtype)",
            "out[rows] = (1.05 * (xs - x0_mean) / time).to(x.dtype)",
        ),
        (
            "flow_trajectory_from: the step",
            "solvers.py",
            "x = heun_update(x, r, s, nu_r, nu_s)",
            "x = heun_update(x, r, s, 1.05 * nu_r, nu_s)",
        ),
        (
            "simple_loss_at: the target",
            "train.py",
            "return loss_simple(target(objective, x0, eps, a, b), prediction).mean()",
            "return loss_simple(1.05 * target(objective, x0, eps, a, b), prediction)"
            ".mean()",
        ),
        (
            "StraightVelocity: x_t from the straight path",
            "objectives.py",
            "xt = (a + b).to(x.dtype) * x",
            "xt = 1.05 * (a + b).to(x.dtype) * x",
        ),
        (
            "straight_times",
            "solvers.py",
            "return vp_to_straight(torch.zeros_like(alpha_bar), alpha_bar)[1].tolist()",
            "return (1.05 * vp_to_straight(torch.zeros_like(alpha_bar), alpha_bar)[1])"
            ".tolist()",
        ),
    ],
}


def run_chapter(chapter: str, package_parent: Path) -> str | None:
    """Execute book/<chapter>.ipynb importing ddpm_lite from package_parent; the first
    failing cell's error name, or None if every cell ran."""
    nb = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
    probe = (  # the copy, not the editable install, is what the chapter imports
        "import pathlib, ddpm_lite\n"
        f"assert pathlib.Path(ddpm_lite.__file__).parents[1] == "
        f"pathlib.Path({str(package_parent)!r}), ddpm_lite.__file__"
    )
    nb.cells.insert(0, nbformat.v4.new_code_cell(probe))
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "book")}},
    )
    try:
        client.execute(env={**os.environ, "PYTHONPATH": str(package_parent)})
    except CellExecutionError as error:
        if "ddpm_lite.__file__" in error.traceback:
            sys.exit(f"the chapter did not import the copy: {error}")
        return error.ename
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="+", choices=sorted(MUTATIONS))
    parser.add_argument("--only", nargs="*", help="mutation names containing these")
    args = parser.parse_args()
    survivors = []
    for chapter in args.chapters:
        for name, file, old, new in MUTATIONS[chapter]:
            if args.only and not any(word in name for word in args.only):
                continue
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / "ddpm_lite"
                shutil.copytree(ROOT / "ddpm_lite", copy)
                source = (copy / file).read_text()
                if source.count(old) != 1:
                    sys.exit(f"{name}: {old!r} is not in ddpm_lite/{file} exactly once")
                (copy / file).write_text(source.replace(old, new))
                began = time.perf_counter()
                failed = run_chapter(chapter, Path(tmp))
                seconds = time.perf_counter() - began
            verdict = f"fails ({failed})" if failed else "SURVIVES"
            print(f"{chapter}: {name}: {verdict}, {seconds:.0f} s", flush=True)
            if not failed:
                survivors.append(f"{chapter}: {name}")
    if survivors:
        sys.exit("survived: " + "; ".join(survivors))


if __name__ == "__main__":
    main()
