import torch

from ddpm_lite.diagrams import chain_diagram, unet_diagram
from ddpm_lite.unet import UNet, UNetConfig


def test_chain_diagram_draws_every_state():
    fig = chain_diagram()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert {"$x_0$", "$x_{t-1}$", "$x_t$", "$x_T$"} <= set(texts)


def test_unet_diagram_pairs_each_up_block_with_a_down_stage_of_its_size():
    model = UNet(
        UNetConfig(
            base_channels=16,
            channel_mults=(1, 2),
            num_res_blocks=1,
            attention_resolutions=(14,),
            groups=8,
        )
    )
    rows = []
    model.conv_in.register_forward_hook(
        lambda m, i, o: rows.append(("conv_in", tuple(i[0].shape), tuple(o.shape)))
    )
    for k, block in enumerate(model.down):
        kind = "resample" if not isinstance(block, torch.nn.ModuleList) else "ResBlock"
        last = (
            block[-1] if isinstance(block, torch.nn.ModuleList) else block
        )  # a ModuleList is never called itself
        last.register_forward_hook(
            lambda m, i, o, k=k, kind=kind: rows.append(
                (f"down {k}: {kind}", tuple(i[0].shape), tuple(o.shape))
            )
        )
    model.middle[2].register_forward_hook(
        lambda m, i, o: rows.append(("middle", tuple(i[0].shape), tuple(o.shape)))
    )
    for k, block in enumerate(model.up):
        kind = "resample" if not isinstance(block, torch.nn.ModuleList) else "ResBlock"
        last = block[-1] if isinstance(block, torch.nn.ModuleList) else block
        last.register_forward_hook(
            lambda m, i, o, k=k, kind=kind: rows.append(
                (f"up {k}: {kind}", tuple(i[0].shape), tuple(o.shape))
            )
        )
    model.conv_out.register_forward_hook(
        lambda m, i, o: rows.append(("conv_out", tuple(i[0].shape), tuple(o.shape)))
    )
    with torch.no_grad():
        model(torch.randn(1, 1, 28, 28), torch.tensor([3]))
    _, skips = unet_diagram(rows)
    sizes = {name: out[2:] for name, _, out in rows}
    assert len(skips) == 2 * 2  # two levels, num_res_blocks + 1 up blocks each
    assert all(sizes[a] == sizes[b] for a, b in skips)
    assert skips[0] == (
        "down 2: ResBlock",
        "up 0: ResBlock",
    )  # the last pushed is the first popped
