import pytest
import torch

from ddpm_lite.unet import Attention, UNet, UNetConfig, timestep_embedding

TINY = UNetConfig(
    base_channels=16,
    channel_mults=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(14,),
    groups=8,
    dropout=0.0,
)


@pytest.mark.parametrize(
    "config,shape",
    [
        (TINY, (3, 1, 28, 28)),
        (UNetConfig(base_channels=16, groups=8), (2, 1, 28, 28)),
        (
            UNetConfig(
                image_size=32,
                in_channels=3,
                base_channels=16,
                channel_mults=(1, 2, 2, 2),
                groups=8,
                attention_resolutions=(8,),
            ),
            (2, 3, 32, 32),
        ),
    ],
)
def test_output_has_the_input_shape(config, shape):
    model = UNet(config)
    x = torch.randn(shape)
    assert model(x, torch.randint(0, 1000, (shape[0],))).shape == shape


def test_predicts_zero_at_initialisation():
    # conv_out is zero-initialised: eps_theta = 0 until training moves it
    model = UNet(TINY)
    assert torch.equal(
        model(torch.randn(2, 1, 28, 28), torch.tensor([3, 900])),
        torch.zeros(2, 1, 28, 28),
    )


def test_output_depends_on_t():
    torch.manual_seed(0)
    model = UNet(TINY).eval()
    with (
        torch.no_grad()
    ):  # the zero-initialised layers hide t at first; give every weight a value
        for parameter in model.parameters():
            parameter.normal_(std=0.1)
    x = torch.randn(1, 1, 28, 28).expand(2, -1, -1, -1)
    out = model(x, torch.tensor([0, 999]))
    assert not torch.allclose(out[0], out[1])


def test_attention_only_at_the_configured_resolution():
    model = UNet(
        UNetConfig(base_channels=16, groups=8)
    )  # 28 -> 14 -> 7, attention at 7
    # at 7 x 7: 2 down blocks + the middle + 3 up blocks
    assert sum(isinstance(m, Attention) for m in model.modules()) == 6


def test_class_conditioning_costs_nothing_when_unused():
    plain = sum(p.numel() for p in UNet(TINY).parameters())
    conditional = UNet(UNetConfig(**{**TINY.__dict__, "num_classes": 10}))
    assert (
        sum(p.numel() for p in conditional.parameters()) - plain
        == 11 * 4 * TINY.base_channels
    )
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([5, 6])
    assert conditional(x, t, torch.tensor([1, 9])).shape == x.shape
    assert conditional(x, t).shape == x.shape  # no label: the null token


def test_no_label_is_the_null_token_also_at_a_flow_models_float_time():
    torch.manual_seed(0)
    conditional = UNet(UNetConfig(**{**TINY.__dict__, "num_classes": 10})).eval()
    for p in conditional.parameters():  # a fresh U-Net's output layer is zero
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(2, 1, 28, 28)
    for t in (torch.tensor([5, 6]), torch.tensor([500.0, 50.0])):  # code index, 1000 r
        with torch.no_grad():
            null = conditional(x, t, torch.tensor([10, 10]))
            assert torch.equal(conditional(x, t), null)
            assert not torch.equal(conditional(x, t, torch.tensor([3, 3])), null)


def test_label_without_class_conditioning_is_rejected():
    with pytest.raises(
        ValueError, match=r"y was given, but the model has no class conditioning"
    ):
        UNet(TINY)(torch.randn(1, 1, 28, 28), torch.tensor([1]), torch.tensor([3]))


def test_timestep_embedding_is_bounded_and_distinct():
    emb = timestep_embedding(torch.arange(1000), 64)
    assert emb.shape == (1000, 64) and emb.abs().max() <= 1.0
    assert (
        torch.cdist(emb, emb).add(torch.eye(1000) * 10).min() > 1e-3
    )  # every step has its own code


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"image_size": 30, "channel_mults": (1, 2, 2)},
            r"image_size 30 must be divisible by 2\^\(levels - 1\) = 4",
        ),
        ({"groups": 7}, r"groups=7 must divide every channel count"),
        ({"num_res_blocks": 0}, r"num_res_blocks must be >= 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"num_classes": 0}, r"num_classes must be None or >= 1"),
        (
            {"channel_mults": (1, 0)},
            r"channel_mults must be a non-empty tuple of positive ints",
        ),
    ],
)
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNetConfig(**kwargs)


def test_a_time_gap_net_loaded_with_a_velocity_nets_weights_starts_as_it():
    torch.manual_seed(0)
    velocity = UNet(TINY).eval()
    with torch.no_grad():  # as if trained: zero-initialised layers no longer zero
        for p in velocity.parameters():
            p.add_(0.05 * torch.randn_like(p))
    with_gap = UNet(UNetConfig(**{**TINY.__dict__, "time_gap": True})).eval()
    missing = with_gap.load_state_dict(velocity.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("gap_mlp.") for k in missing)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([300.0, 800.0])
    with torch.no_grad():
        expected = velocity(x, t)
        assert torch.equal(with_gap(x, t, gap=torch.tensor([0.0, 500.0])), expected)
        torch.nn.init.normal_(with_gap.gap_mlp[2].weight, std=0.1)  # once trained
        assert not torch.allclose(
            with_gap(x, t, gap=torch.tensor([0.0, 500.0])), expected
        )


def test_a_gap_for_a_net_without_a_second_time_is_an_error():
    with pytest.raises(ValueError, match="no second time"):
        UNet(TINY)(
            torch.randn(1, 1, 28, 28), torch.tensor([1.0]), gap=torch.tensor([1.0])
        )
