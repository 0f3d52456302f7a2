"""The cost of a MeanFlow training step against a flow-matching one, through the U-Net.

    python benchmarks/meanflow_step.py --preset cpu --batch-size 128 --steps 10

Both steps train the preset's U-Net on random images at random times, forward and
backward, with the same optimizer. The flow-matching step regresses nu_theta(x_r, r) on
eps - x0; the MeanFlow step computes u_theta and its derivative along the path with one
torch.func.jvp (tangent (nu, 0, 1), `flow_map.meanflow_target`) and regresses u_theta on
the stop-gradient target. The U-Net reads one time, so u_theta(x, s, r) here ignores s;
a network for MeanFlow adds an embedding of r - s, a few small linear layers. The ratio
of the two steps' times is what plans a MeanFlow run's images on this machine.
"""

from __future__ import annotations

import argparse
import time

import torch
from hardware import describe

from ddpm_lite.flow_map import meanflow_loss, time_pairs
from ddpm_lite.objectives import network_time
from ddpm_lite.presets import get_preset
from ddpm_lite.unet import UNet


def step_seconds(loss_of, net: torch.nn.Module, batch: int, steps: int) -> float:
    """Median wall time of one optimizer step of loss_of(x0, eps, s, r), after one
    warm-up step."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    times = []
    for k in range(steps + 1):
        x0 = torch.randn(batch, 1, 28, 28, generator=g).clamp(-1, 1)
        eps = torch.randn(batch, 1, 28, 28, generator=g)
        s, r = time_pairs(batch, g)
        began = time.perf_counter()
        loss = loss_of(x0, eps, s, r)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if k:  # the first step allocates and warms the kernels
            times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", help="tiny, cpu or gpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each")
    args = parser.parse_args()
    config = get_preset(args.preset).unet
    torch.manual_seed(0)
    net = UNet(config)

    def u_theta(x, s, r):
        return net(x, network_time("flow", r))

    def plain(x0, eps, s, r):  # the same loss without the JVP, as `train` computes it
        b = r.reshape(-1, 1, 1, 1)
        xr = (1 - b) * x0 + b * eps
        return (u_theta(xr, r, r) - (eps - x0)).pow(2).mean()

    def meanflow(x0, eps, s, r):
        return meanflow_loss(u_theta, x0, eps, s, r)

    seconds = {
        name: step_seconds(loss_of, net, args.batch_size, args.steps)
        for name, loss_of in (("plain", plain), ("meanflow", meanflow))
    }
    params = sum(p.numel() for p in net.parameters())
    print(describe(torch.device("cpu")))
    print(
        f"preset {args.preset}: U-Net {params / 1e6:.2f} M parameters, batch "
        f"{args.batch_size}, float32, {args.steps} steps of each timed (median)"
    )
    print(f"flow-matching step: {seconds['plain']:.3f} s")
    print(f"MeanFlow step (one torch.func.jvp): {seconds['meanflow']:.3f} s")
    print(f"MeanFlow / flow matching: {seconds['meanflow'] / seconds['plain']:.2f}x")


if __name__ == "__main__":
    main()
