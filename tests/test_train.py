import math

import torch

from ddpm_lite.schedules import NoiseSchedule, make_betas
from ddpm_lite.toy import ToyEpsMLP, exact_eps_model, gaussian_mixture_1d, two_moons
from ddpm_lite.train import training_loss


def test_exact_model_loss_is_the_mean_conditional_variance_of_eps():
    # For x0 ~ N(m, s^2) the best eps_theta is E[eps | x_t], and L_simple at the optimum is
    # E_t Var(eps | x_t) = E_t [1 - (1 - ab) / (ab s^2 + 1 - ab)]: an independent closed form.
    m, s = 0.5, 0.3
    schedule = NoiseSchedule(make_betas("linear", 200))
    data = gaussian_mixture_1d([1.0], [m], [s])
    g = torch.Generator().manual_seed(0)
    ab = schedule.alpha_bars
    expected = (1 - (1 - ab) / (ab * s**2 + 1 - ab)).mean().item()
    losses = torch.tensor([training_loss(exact_eps_model(data, ab), schedule, data.sample(2000, g), g).item() for _ in range(50)])
    # 50 batches of 2000: the batch means vary by their own SE, estimated from the batches
    assert abs(losses.mean().item() - expected) < 5 * losses.std().item() / math.sqrt(len(losses))


def test_same_generator_state_gives_the_same_loss():
    schedule = NoiseSchedule(make_betas("linear", 50)).to(dtype=torch.float32)
    model = ToyEpsMLP(T=50)
    x0 = two_moons(64, torch.Generator().manual_seed(0))
    a = training_loss(model, schedule, x0, torch.Generator().manual_seed(5))
    b = training_loss(model, schedule, x0, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    schedule = NoiseSchedule(make_betas("linear", 50)).to(dtype=torch.float32)
    model = ToyEpsMLP(T=50)
    x0 = two_moons(256, torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_on_batch = lambda: training_loss(model, schedule, x0, torch.Generator().manual_seed(7))  # same t and eps
    before = loss_on_batch().item()
    for _ in range(20):
        optimizer.zero_grad()
        loss_on_batch().backward()
        optimizer.step()
    assert loss_on_batch().item() < 0.7 * before
