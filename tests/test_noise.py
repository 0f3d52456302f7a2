import pytest
import torch

from ddpm_lite.noise import (
    GeneratorNoise,
    RecordedNoise,
    RecordingNoise,
    SharedNoise,
    noise_source,
)
from ddpm_lite.sampling import ddpm_trajectory, final_sample
from ddpm_lite.schedules import NoiseSchedule, make_betas

SCHEDULE = NoiseSchedule(make_betas("linear", 20))


def half(xt, t):
    return 0.5 * xt


def test_a_generator_argument_draws_what_generator_noise_draws():
    a = torch.Generator().manual_seed(3)
    b = GeneratorNoise(torch.Generator().manual_seed(3), "cpu", torch.float32)
    x = final_sample(ddpm_trajectory(half, SCHEDULE, (4, 2), a))
    y = final_sample(ddpm_trajectory(half, SCHEDULE, (4, 2), b))
    assert torch.equal(x, y)


def test_replaying_a_recorded_run_gives_the_same_sample():
    recording = RecordingNoise(
        GeneratorNoise(torch.Generator().manual_seed(1), "cpu", torch.float32)
    )
    x = final_sample(ddpm_trajectory(half, SCHEDULE, (3, 2), recording))
    assert len(recording.draws) == 1 + SCHEDULE.T  # x_T, then one z per step
    replay = RecordedNoise(recording.draws)
    y = final_sample(ddpm_trajectory(half, SCHEDULE, (3, 2), replay))
    assert torch.equal(x, y) and replay.used == len(recording.draws)
    # one draw out of place changes the sample: the replay is not ignored
    swapped = recording.draws[:1] + recording.draws[2:3] + recording.draws[1:2]
    shifted = RecordedNoise(swapped + recording.draws[3:])
    assert not torch.equal(
        x, final_sample(ddpm_trajectory(half, SCHEDULE, (3, 2), shifted))
    )


def test_recorded_noise_refuses_a_draw_past_its_end_or_of_another_shape():
    replay = RecordedNoise([torch.zeros(2, 3)])
    with pytest.raises(
        ValueError, match=r"shape \(2, 3\), the sampler asks for \(4, 3\)"
    ):
        replay.randn((4, 3))
    replay.randn((2, 3))
    with pytest.raises(ValueError, match="has only 1 draws"):
        replay.randn((2, 3))


def test_shared_noise_repeats_one_draw_over_every_block_of_rows():
    shared = SharedNoise(
        GeneratorNoise(torch.Generator().manual_seed(0), "cpu", torch.float32), rows=2
    )
    z = shared.randn((6, 5))
    assert torch.equal(z[0:2], z[2:4]) and torch.equal(z[0:2], z[4:6])
    assert not torch.equal(z[0], z[1])
    with pytest.raises(ValueError, match="a batch of 5 is not whole blocks of 2"):
        shared.randn((5, 5))


def test_noise_source_takes_a_generator_or_a_source_and_nothing_else():
    source = RecordedNoise([])
    assert noise_source(source, "cpu", torch.float32) is source
    assert isinstance(
        noise_source(torch.Generator(), "cpu", torch.float32), GeneratorNoise
    )
    with pytest.raises(
        TypeError, match="generator must be a torch.Generator or a noise"
    ):
        noise_source(0, "cpu", torch.float32)


def test_generator_noise_draws_on_its_device_in_its_dtype():
    z = GeneratorNoise(torch.Generator(), "meta", torch.float64).randn((2, 3))
    assert z.device.type == "meta" and z.dtype == torch.float64
