"""VQ-VAE and VQ-VAE-2: quantisation, its gradients, the codebook updates, the code
prior, the likelihood bound and the training hook that fits the prior."""
from __future__ import annotations

import math

import pytest
import torch

from vaebench.config import ConfigError
from vaebench.data import load_prepared
from vaebench.models import build_model, validate_model_config
from vaebench.models.code_prior import CodePriorConfig, GridPrior
from vaebench.models.quantize import VectorQuantizer


def _model(family="vqvae", shape=(1, 28, 28), **kw):
    block = {"family": family, "dataset": "mnist", "latent_dim": 4, "codebook_size": 8, **kw}
    return build_model(validate_model_config("m", block), shape)


def _quantizer(update="loss", k=6, d=3, **kw):
    torch.manual_seed(0)
    vq = VectorQuantizer(k, d, update, **kw)
    with torch.no_grad():
        vq.embedding.copy_(torch.randn(k, d))
    vq.initialised.fill_(True)
    return vq


def test_quantisation_picks_the_nearest_code():
    vq = _quantizer()
    z_e = torch.randn(5, 3, 4, 4)
    out = vq(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 3)
    brute = torch.cdist(flat, vq.embedding).argmin(1)
    assert (out.codes.flatten() == brute).all()
    assert torch.allclose(out.z_q, vq.lookup(out.codes), atol=1e-6)
    # commitment = sum over the grid of ||z_e - e||^2, per image
    gap = (flat - vq.embedding[brute]).pow(2).sum(1).view(5, -1).sum(1)
    assert torch.allclose(out.commitment, gap, atol=1e-5)


def test_straight_through_gradient_is_copied_to_the_encoder_output():
    vq = _quantizer()
    z_e = torch.randn(2, 3, 4, 4, requires_grad=True)
    w = torch.randn(2, 3, 4, 4)
    (vq(z_e).z_q * w).sum().backward()
    assert torch.equal(z_e.grad, w)          # d z_q / d z_e = identity
    assert vq.embedding.grad is None         # the codebook learns only from its own term


def test_codebook_and_commitment_terms_move_only_their_own_side():
    vq = _quantizer()
    z_e = torch.randn(2, 3, 4, 4, requires_grad=True)
    vq(z_e).codebook.sum().backward()
    assert z_e.grad is None and vq.embedding.grad.abs().sum() > 0
    vq.embedding.grad = None
    vq(z_e).commitment.sum().backward()
    assert z_e.grad.abs().sum() > 0 and vq.embedding.grad is None


def test_straight_through_gradient_reaches_the_encoder_weights():
    torch.manual_seed(0)
    model = _model(commitment=0.0)
    x = torch.rand(4, 1, 28, 28).round()
    qs = model.quantize(x)
    recon = -model.likelihood(model.decoder_logits([q.z_q for q in qs])).log_prob(x).sum()
    recon.backward()                          # reconstruction only: no commitment path
    first_conv = model.encoder[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_ema_update_is_the_moving_average_and_moves_codes_towards_their_inputs():
    g = 0.9
    vq = _quantizer("ema", k=4, d=2, decay=g, eps=0.0)
    with torch.no_grad():
        vq.embedding.copy_(torch.tensor([[0., 0.], [10., 10.], [-10., 10.], [10., -10.]]))
        vq.ema_sum.copy_(vq.embedding)
    target = torch.tensor([2.0, 1.0])
    z_e = (target + 0.1 * torch.randn(8, 2)).T.reshape(1, 2, 2, 4)   # all near code 0
    before = (vq.embedding[0] - target).norm()
    out = vq(z_e, update=True)
    assert (out.codes == 0).all() and out.codebook.abs().sum() == 0
    n0, s0 = 0.9 * 1 + 0.1 * 8, 0.9 * torch.zeros(2) + 0.1 * z_e.permute(0, 2, 3, 1).reshape(-1, 2).sum(0)
    total = n0 + 3 * 0.9                                   # unused codes decay to 0.9
    assert torch.allclose(vq.ema_count, torch.tensor([n0, 0.9, 0.9, 0.9]))
    assert torch.allclose(vq.embedding[0], s0 / (n0 / total * total), atol=1e-5)
    assert (vq.embedding[0] - target).norm() < before
    assert torch.allclose(vq.embedding[1:], torch.tensor([[10., 10.], [-10., 10.], [10., -10.]]))
    vq(z_e)                                                # no update unless asked
    assert torch.allclose(vq.ema_count, torch.tensor([n0, 0.9, 0.9, 0.9]))


def test_first_update_initialises_codes_and_dead_codes_restart_on_encoder_outputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(5, 2, "loss", dead_code_steps=3)
    z_e = torch.randn(1, 2, 4, 4) + 5.0
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    is_row = lambda e: (torch.cdist(e[None], flat).min() < 1e-6).item()  # noqa: E731
    vq(z_e, update=True)
    assert all(is_row(e) for e in vq.embedding)            # data-dependent initialisation
    with torch.no_grad():
        vq.embedding[4] = torch.tensor([-50.0, -50.0])      # never the nearest: dead
    for _ in range(2):
        vq(z_e, update=True)
    assert vq.unused_steps[4] == 2 and vq.embedding[4, 0] == -50.0
    vq(z_e, update=True)                                   # third unused step: restart
    assert is_row(vq.embedding[4]) and vq.unused_steps[4] == 0


def test_code_prior_is_autoregressive_in_raster_order():
    torch.manual_seed(0)
    prior = GridPrior(5, CodePriorConfig(channels=8, layers=3, kernel=3))
    codes = torch.randint(0, 5, (2, 6, 6))
    base = prior.logits(codes)
    i, j = 3, 2
    changed = codes.clone()
    changed[:, i, j] = (codes[:, i, j] + 1) % 5
    diff = (prior.logits(changed) - base).abs().amax(dim=(0, 1))       # (h, w)
    order = torch.arange(36).view(6, 6)
    assert diff[order <= i * 6 + j].max() == 0     # earlier conditionals (and its own) unchanged
    assert diff[order > i * 6 + j].max() > 1e-4     # later ones do see it


def test_windowed_sampling_matches_the_whole_grid_computation():
    torch.manual_seed(0)
    prior = GridPrior(4, CodePriorConfig(channels=8, layers=2, kernel=3), cond_codes=3)
    codes, cond = torch.randint(0, 4, (2, 7, 9)), torch.randint(0, 3, (2, 4, 5))
    full = prior.logits(codes, cond)
    feats = prior.cond_features(cond, (7, 9))
    r = prior.reach
    for i, j in [(0, 0), (3, 4), (6, 8), (5, 1)]:
        top, left = max(0, i - r), max(0, j - r)
        win = prior.logits(codes[:, top:i + 1, left:j + r + 1],
                           cond_feats=feats[:, :, top:i + 1, left:j + r + 1])
        assert torch.allclose(win[:, :, -1, j - left], full[:, :, i, j], atol=1e-5)
    other = cond.clone()
    other[:, 0, 0] = (cond[:, 0, 0] + 1) % 3
    assert not torch.allclose(prior.logits(codes, other), full)   # the level above matters


def test_bound_parts_and_a_uniform_prior():
    torch.manual_seed(0)
    model = _model()
    with torch.no_grad():                     # a uniform prior: log p(c) = -n log K
        model.code_prior.levels[0].out.weight.zero_()
        model.code_prior.levels[0].out.bias.zero_()
    x = torch.rand(3, 1, 28, 28).round()
    b = model.nll_bound(x)
    assert torch.allclose(b["code_nll"], torch.full((3,), 49 * math.log(8)), atol=1e-4)
    assert torch.allclose(b["recon_nll"], -model.decode(model.encode(x).mean).log_prob(x),
                          atol=1e-4)
    assert torch.allclose(b["total"], b["recon_nll"] + b["code_nll"])


@pytest.mark.parametrize("family", ["vqvae", "vqvae2"])
def test_bound_is_above_the_exact_negative_log_likelihood(family):
    """With tiny grids (1x1; 1x1 top and 2x2 bottom), p(x) = sum_c p(c) p(x|c) is
    enumerable."""
    torch.manual_seed(0)
    widths = [4, 4] if family == "vqvae" else [4]
    model = _model(family, shape=(1, 4, 4),
                   hidden=widths, codebook_size=3)
    x = torch.rand(6, *model.image_shape).round()
    shapes = model.grid_shapes()
    grids = torch.cartesian_prod(*[torch.arange(3)] * sum(h * w for h, w in shapes))
    if grids.dim() == 1:
        grids = grids[:, None]
    sizes = [h * w for h, w in shapes]
    log_joint = []
    for row in grids:                         # every configuration of the codes
        codes = [c.view(1, *s) for c, s in zip(row.split(sizes), shapes)]
        log_pc = model.code_prior.log_prob(codes)
        z = [vq.lookup(c) for vq, c in zip(model.quantizers, codes)]
        log_joint.append(log_pc + model.likelihood(model.decoder_logits(z)).log_prob(x))
    exact_nll = -torch.logsumexp(torch.stack(log_joint), 0)                 # (6,)
    assert (model.nll_bound(x)["total"] >= exact_nll - 1e-4).all()


def test_vqvae2_bottom_codes_depend_on_the_top_and_both_have_gradients():
    torch.manual_seed(0)
    model = _model("vqvae2")
    assert model.grid_shapes() == [(4, 4), (7, 7)]
    x = torch.rand(4, 1, 28, 28).round()
    out = model.loss(x, 0)
    out.loss.backward()
    assert {"perplexity_top", "perplexity_bottom", "usage_top", "usage_bottom"} <= set(out.terms)
    for part in ("top", "bottom", "top_dec", "bottom_in"):
        grads = [p.grad for p in model.encoder[part].parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), part
    assert model.encode(x).mean.shape == (4, 4 * (16 + 49))
    assert model.decode(model.encode(x).mean).mean.shape == x.shape


def test_after_fit_trains_the_prior_inside_the_state_dict(tiny_data):
    torch.manual_seed(0)
    data = load_prepared(tiny_data / "mnist")
    model = _model(code_prior={"epochs": 3, "channels": 8, "layers": 2, "batch_size": 32})
    assert not any(p is q for p in model.optim_groups()["all"]
                   for q in model.code_prior.parameters())
    x = data.test_inputs(True)
    before = model.nll_bound(x)
    model.after_fit(data, binarize=True)
    after = model.nll_bound(x)
    assert after["code_nll"].mean() < before["code_nll"].mean() - 5
    assert torch.allclose(after["recon_nll"], before["recon_nll"])   # the autoencoder is fixed
    assert any(k.startswith("code_prior.") for k in model.state_dict())
    diag = model.diagnostics(x)
    assert diag["nll_bound"] == pytest.approx(float(after["total"].mean()), rel=1e-4)
    assert 1 <= diag["perplexity"] <= 8 and 0 < diag["usage"] <= 1
    assert model.sample(3).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("block, match", [
    ({"codebook_size": 1}, "codebook_size"),
    ({"codebook_update": "kmeans"}, "codebook_update"),
    ({"commitment": -0.1}, "commitment"),
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"code_prior": {"kernel": 4}}, "kernel"),
    ({"backbone": "mlp"}, "backbone"),
])
def test_bad_options_are_errors_naming_the_key(block, match):
    with pytest.raises(ConfigError, match=match):
        validate_model_config("m", {"family": "vqvae", "dataset": "mnist", **block})


def test_grids_must_divide_the_image():
    with pytest.raises(ConfigError, match="divisible by 8"):
        _model(shape=(1, 28, 28), hidden=[8, 8, 8])


@pytest.mark.slow   # runs the train stage
@pytest.mark.parametrize("name", ["mnist_vqvae", "mnist_vqvae2"])
def test_train_stage_reports_the_bound_and_the_checkpoint_carries_the_prior(
        name, tiny_config, tiny_data, tmp_path):
    from vaebench.checkpoints import load_checkpoint
    from vaebench.train import train_stage
    metrics = train_stage(tiny_config, name, tiny_data / "mnist", tmp_path / "models",
                          tmp_path / "metrics.json", tmp_path / "plots")
    diag = metrics["diagnostics"]
    assert diag["nll_bound"] == pytest.approx(diag["recon_nll"] + diag["code_nll"], rel=1e-5)
    model, _ = load_checkpoint(tmp_path / "models" / "seed0.pt")
    x = load_prepared(tiny_data / "mnist").test_inputs(True)
    reloaded = model.diagnostics(x)
    assert reloaded["nll_bound"] == pytest.approx(diag["nll_bound"], rel=1e-5)
    untrained = build_model(tiny_config.models[name], model.image_shape)
    untrained.load_state_dict({k: v for k, v in model.state_dict().items()
                               if not k.startswith("code_prior.")}, strict=False)
    assert untrained.diagnostics(x)["code_nll"] > reloaded["code_nll"] + 1   # the prior was fitted
