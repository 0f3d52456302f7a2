"""The files the site's "generate in your browser" page loads, exported from the shipped model.

    python tools/site_models.py _static/models      (run by `make book`, before the build)

Writes into the directory (ignored by git; Jupyter Book copies _static/ into the site):
- mnist_flow.onnx, mnist_meanflow.onnx, mnist_ddpm.onnx: the shipped U-Nets (flow
  matching's velocity model, the page's default; the one-step model's average velocity
  u(x_r, s, r, y); DDPM's eps-model), float16 weights, float32 compute
  (ddpm_lite.export);
- mnist_flow.json, mnist_meanflow.json, mnist_ddpm.json: the objective, T, every
  alpha_bar_t, the inputs and output, the "no label" token, and a stamp;
- mnist_flow.reference_heun.json: one run of the package's straight-path Heun steps with
  guidance (its x_1 and its samples with the PyTorch model and with this ONNX file),
  which the page replays to check its JavaScript sampler against the Python one;
- mnist_meanflow.reference_flow_map.json, mnist_meanflow.reference_flow_map_2.json: the
  same for the flow-map steps (flow_map.flow_map_trajectory) at w = 1, 1 and 2 calls;
- mnist_ddpm.reference.json, mnist_ddpm.reference_dpm_solver.json: the same for DDIM
  (with its step noise) and DPM-Solver++(2M) (solvers.py), which draws only x_T;
- mnist_test_digits.json: the first 16 test digits of the shipped MNIST subset, in [-1, 1].
The stamp is the SHA-256 of the checkpoints, of the package files the export reads and of this
file; when it is unchanged nothing is written, so a changed checkpoint (or exporter, sampler)
re-exports them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import ddpm_lite
from ddpm_lite.checkpoint import sha256_of
from ddpm_lite.data import SUBSET_DIR, read_mnist_dir, to_model_range
from ddpm_lite.export import (
    export_onnx,
    onnx_eps_model,
    reference_run,
    write_json,
    write_schedule,
)
from ddpm_lite.pretrained import load_pretrained, pretrained_path

PACKAGE = Path(ddpm_lite.__file__).parent
SOURCES = (
    "export.py",
    "unet.py",
    "sampling.py",
    "diffusion.py",  # the kernels the sampler's steps call
    "noise.py",  # the reference run's recorded noise
    "guidance.py",
    "schedules.py",
    "solvers.py",  # the DPM-Solver++(2M) and Heun reference runs
    "objectives.py",  # the flow model's time scale
    "flow_map.py",  # the one-step model's net and its flow-map reference runs
    "data.py",
)
# The fixed case the page replays: two digits, 10 DDIM steps with step noise, guidance on.
REFERENCE = dict(labels=[3, 7], scale=2.0, num_steps=10, eta=0.5, seed=0)
# The same digits, guidance and seed with DPM-Solver++(2M) on the log-SNR steps: 10 network calls,
# no step noise (its x_T is the DDIM run's).
REFERENCE_SOLVER = dict(
    sampler="dpm-solver++", labels=[3, 7], scale=2.0, num_steps=10, seed=0
)
# The flow model with the page's default, Heun's 10 steps on the straight path (19 calls).
REFERENCE_FLOW = dict(sampler="heun", labels=[3, 7], scale=2.0, num_steps=10, seed=0)
# The one-step model at its default, 1 call, and at 2 calls (the second step starts
# inside the path, at r = 0.5); w = 1, the only scale it samples at.
REFERENCE_FLOW_MAP = dict(
    sampler="flow-map", labels=[3, 7], scale=1.0, num_steps=1, seed=0
)
REFERENCE_FLOW_MAP_2 = dict(REFERENCE_FLOW_MAP, num_steps=2)


def site_models() -> dict:
    """Per model name: its file stem and the recorded runs the page's check replays."""
    return {
        "mnist-flow-cond": (
            "mnist_flow",
            {"mnist_flow.reference_heun.json": REFERENCE_FLOW},
        ),
        "mnist-meanflow": (
            "mnist_meanflow",
            {
                "mnist_meanflow.reference_flow_map.json": REFERENCE_FLOW_MAP,
                "mnist_meanflow.reference_flow_map_2.json": REFERENCE_FLOW_MAP_2,
            },
        ),
        "mnist-ddpm-cond": (
            "mnist_ddpm",
            {
                "mnist_ddpm.reference.json": REFERENCE,
                "mnist_ddpm.reference_dpm_solver.json": REFERENCE_SOLVER,
            },
        ),
    }


# Largest |x_browser - x_python| accepted over the sample, in [-1, 1] pixel units, for the Python sampler run
# with the browser's own model file ("onnx": only the sampler's code and the runtime's kernels differ) and with
# the PyTorch model ("torch": the browser's weights are float16 too). Measured in headless Chromium for the
# DDPM samplers and for the flow model's Heun run: see the README; the tolerances are several times those values.
# The flow map's runs (1 and 2 calls of the one-step model) are held to the same tolerances.
TOLERANCE = {"onnx": 5e-4, "torch": 5e-2}


def stamp() -> str:
    digest = hashlib.sha256()
    for name in site_models():
        weights = pretrained_path(name).with_suffix(".safetensors")
        digest.update(sha256_of(weights).encode())
    for source in SOURCES:
        digest.update((PACKAGE / source).read_bytes())
    digest.update(Path(__file__).read_bytes())  # this file decides what is written
    cases = {
        "ddim": REFERENCE,
        "solver": REFERENCE_SOLVER,
        "flow": REFERENCE_FLOW,
        "flow_map": [REFERENCE_FLOW_MAP, REFERENCE_FLOW_MAP_2],
    }
    digest.update(
        json.dumps({**cases, "tolerance": TOLERANCE}, sort_keys=True).encode()
    )
    return digest.hexdigest()


def export_site_models(out: Path, force: bool = False) -> bool:
    """Write the files into out unless their stamp is current; True when written."""
    current = stamp()
    stamped = [out / f"{stem}.json" for stem, _ in site_models().values()]
    if not force and all(
        f.is_file() and json.loads(f.read_text()).get("stamp") == current
        for f in stamped
    ):
        return False
    digits = to_model_range(read_mnist_dir(SUBSET_DIR, "test").images[:16])
    write_json(
        out / "mnist_test_digits.json",
        {
            "shape": list(digits.shape),
            "x0": [round(float(v), 6) for v in digits.reshape(-1)],
        },
    )
    for name, (stem, references) in site_models().items():
        model, schedule, _, _ = load_pretrained(name)
        onnx_file = export_onnx(model, out / f"{stem}.onnx", half_weights=True)
        c = model.config
        cond_models = {"onnx": onnx_eps_model(onnx_file), "torch": model}
        for file_name, case in references.items():
            record = reference_run(
                cond_models,
                c.num_classes,
                (c.in_channels, c.image_size, c.image_size),
                schedule,
                **case,
            )
            record["tolerance"] = TOLERANCE
            write_json(out / file_name, record)
        write_schedule(
            out / f"{stem}.json", schedule.alpha_bars, model, stamp=current
        )  # last: its stamp marks the model's files complete
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out", type=Path, help="directory for the exported files (e.g. _static/models)"
    )
    parser.add_argument(
        "--force", action="store_true", help="export even when the stamp is current"
    )
    args = parser.parse_args()
    written = export_site_models(args.out, args.force)
    print(f"{args.out}: {'exported' if written else 'up to date'}")


if __name__ == "__main__":
    main()
