"""Backdrop for non-decomposable losses (backdrop.nondecomposable): the ceilings against closed
forms and independent Monte Carlo estimates, the likelihood ratio against the oracle's posteriors,
the losses and metrics against brute force, batch backdrop's loss and gradient, and a tiny plan
run, resumed and reported, through the library and the CLI."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy import optimize, stats

import cli
from backdrop import Backdrop, draw_mask
from backdrop import nondecomposable as nd
from backdrop import runner
from backdrop.runner import holm
from backdrop.nondecomposable.losses import f1_from_rates
from backdrop.nondecomposable.training import INIT, MASKS, ORDER, logits_of, make_network, streams
from msgp import oracle
from msgp.spec import DatasetSpec

# Monte Carlo comparisons allow four standard errors: a correct estimate fails one in 16 000 times.
Z = 4.0


def test_gaussian_ceilings_match_the_closed_form_of_equal_covariances():
    # Without the stretch both classes have covariance I, the ratio is linear, mu.x - |mu|^2/2,
    # and N(0, |mu|^2) against N(|mu|^2, |mu|^2): AUC = Phi(|mu| / sqrt 2), F1 maximised over t.
    problem = nd.GaussianProblem(features=6, n_shift=2, shift=0.8, n_stretch=1, stretch=1.0, prior=0.1)
    found = nd.ceilings(problem, 50_000)
    m = 0.8 * math.sqrt(2)
    assert abs(found["auc"] - stats.norm.cdf(m / math.sqrt(2))) <= Z * found["auc_se"]

    def f1(t):
        tpr, fpr = stats.norm.sf((t - m * m) / m), stats.norm.sf(t / m)
        return 2 * 0.1 * tpr / (0.1 * tpr + 0.1 + 0.9 * fpr)

    best = -optimize.minimize_scalar(lambda t: -f1(t), bounds=(-5, 10), method="bounded").fun
    assert abs(found["f1"] - best) <= Z * found["f1_se"]
    assert found["f1_se"] < 0.01 and found["auc_se"] < 0.005  # the tolerances above are tight


def test_gaussian_likelihood_ratio_is_the_densities_ratio():
    problem = nd.GaussianProblem(features=10, n_shift=3, n_stretch=2)
    split = problem.draw(200, stream=3)
    mu, directions = problem._geometry
    covariance = np.eye(10) + (problem.stretch**2 - 1) * directions @ directions.T
    x = split.x.double().numpy()
    expected = (stats.multivariate_normal(mu, covariance).logpdf(x) - stats.multivariate_normal(np.zeros(10)).logpdf(x))
    # float32 inputs: the ratio is a sum of ~features squares of magnitude |x|^2.
    tolerance = 10 * np.finfo(np.float32).eps * (x * x).sum(axis=1).max()
    assert np.max(np.abs(problem.llr(x) - expected)) <= tolerance


def test_gaussian_ceilings_bound_an_independent_labelled_sample():
    problem = nd.GaussianProblem(features=8, n_shift=2, n_stretch=1, prior=0.2)
    found = nd.ceilings(problem, 40_000)
    split = problem.draw(100_000, stream=11)
    y = split.y.numpy() > 0.5
    auc, auc_se = nd.roc_auc(split.llr[y], split.llr[~y], standard_error=True)
    assert abs(auc - found["auc"]) <= Z * math.hypot(auc_se, found["auc_se"])
    tpr, fpr = (split.llr[y] > found["threshold"]).mean(), (split.llr[~y] > found["threshold"]).mean()
    f1, f1_se = f1_from_rates(tpr, fpr, problem.prior, y.sum(), (~y).sum())
    assert abs(f1 - found["f1"]) <= Z * math.hypot(f1_se, found["f1_se"])
    assert abs(y.mean() - problem.prior) <= Z * math.sqrt(problem.prior * (1 - problem.prior) / len(y))


@pytest.fixture(scope="module")
def texture_problem():
    spec = DatasetSpec(n=1, length_scales=((1.5, 2.0), (2.5, 4.0)), amplitudes=(1.0, 1.0), size=16, seed=3)
    return nd.MSGPProblem(spec=spec, prior=0.1, bins=8)


def test_texture_likelihood_ratio_is_the_oracles_coarse_scale_posterior_ratio(texture_problem):
    # Under a uniform class prior the oracle's log posterior odds of the coarse scale's choice are
    # the likelihood ratio with the fine scale summed out.
    split = texture_problem.draw(300, stream=5)
    fields, _ = texture_problem._fields(split.y.numpy() > 0.5, 5)
    marginals = oracle.posteriors(fields, texture_problem.spec).log_marginals
    expected = marginals[:, 1, 1] - marginals[:, 1, 0]
    assert np.allclose(split.llr, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    assert split.x.shape == (300, 8)


def test_texture_ceilings_bound_an_independent_labelled_sample(texture_problem):
    found = nd.ceilings(texture_problem, 10_000)
    split = texture_problem.draw(20_000, stream=9)
    y = split.y.numpy() > 0.5
    auc, auc_se = nd.roc_auc(split.llr[y], split.llr[~y], standard_error=True)
    assert abs(auc - found["auc"]) <= Z * math.hypot(auc_se, found["auc_se"])
    assert 0.6 < found["auc"] < 0.999  # a task with room below its ceiling and above chance
    assert abs(y.mean() - 0.1) <= Z * math.sqrt(0.1 * 0.9 / len(y))


def test_roc_auc_and_best_threshold_against_brute_force():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=300), 1)  # rounded: ties between the classes
    labels = (rng.random(300) < 0.3).astype(float)
    pos, neg = scores[labels > 0.5], scores[labels < 0.5]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    auc, se = nd.roc_auc(pos, neg, standard_error=True)
    assert auc == pytest.approx(pairs, rel=1e-12)
    assert 0 < se < 0.1
    every = max(nd.f1_score(scores, labels, t) for t in np.concatenate([scores - 1e-9, [scores.max()]]))
    assert nd.f1_score(scores, labels, nd.best_threshold(scores, labels)) == pytest.approx(every, rel=1e-12)


def test_pairwise_auc_loss_without_a_pair_is_zero_with_zero_gradient():
    logits = torch.randn(5, requires_grad=True)
    loss = nd.pairwise_auc_loss(logits, torch.zeros(5))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.count_nonzero(logits.grad) == 0


@pytest.mark.parametrize("loss", [nd.soft_f1_loss, nd.pairwise_auc_loss])
def test_batch_backdrop_keeps_the_loss_and_changes_the_gradient_as_the_layer_does(loss):
    generator = torch.Generator().manual_seed(0)
    net = make_network(6, 0.2, generator)
    x, y = torch.randn(64, 6, generator=generator), (torch.rand(64, generator=generator) < 0.3).float()
    mask = draw_mask(torch.empty(64), 0.75, dims=(0,), generator=torch.Generator().manual_seed(1))

    def gradient(logits_fn):
        net.zero_grad()
        value = loss(logits_fn(), y)
        value.backward()
        return value.detach(), torch.cat([p.grad.ravel() for p in net.parameters()])

    full_value, full_grad = gradient(lambda: logits_of(net, x))
    ours_value, ours_grad = gradient(lambda: nd.backdrop_logits(net, x, 0.75, mask=mask))
    layer = Backdrop(0.75, dims=(0,))
    layer.fixed_mask = mask
    layer_value, layer_grad = gradient(lambda: layer(logits_of(net, x)))
    # The kept samples are recomputed in a smaller batch: their logits agree to float32 rounding.
    eps = torch.finfo(torch.float32).eps * 64
    assert abs(ours_value - full_value) <= eps * abs(full_value)
    assert layer_value == full_value
    scale = full_grad.abs().max()
    assert (ours_grad - full_grad).abs().max() > 1e-2 * scale
    assert torch.allclose(ours_grad, layer_grad, rtol=0, atol=eps * layer_grad.abs().max())


def _recorder():
    events = []
    return events, lambda event, info: events.append((event, info))


@pytest.mark.slow
def test_tiny_plan_runs_resumes_and_reports(tmp_path):
    plan = nd.tiny_plan()
    runs = plan.runs()
    events, progress = _recorder()
    written = nd.run_plan(plan, tmp_path, progress=progress)
    assert set(written) == {"results.csv", "results.md", "comparisons.csv", "comparisons.md", "curves.png"}
    assert len([e for e, _ in events if e == "done"]) == len(runs) == 8
    ceiling = json.loads((tmp_path / "ceilings.json").read_text())["gaussian"]
    table = (tmp_path / "results.md").read_text()
    assert f"Ceiling F1 {ceiling['f1']:.4f}" in table and "small batch (32)" in table
    assert "large batch + backdrop p=0.75 | large batch, full gradient | 2 |" in (tmp_path / "comparisons.md").read_text()
    # Each table is a family for Holm's correction: its adjusted p values are the table's own.
    rows = list(csv.DictReader((tmp_path / "comparisons.csv").open()))
    matched = [r for r in rows if not r["time_ratio"]]
    assert [float(r["holm_p"]) for r in matched] == pytest.approx(holm([float(r["p"]) for r in matched]), rel=1e-12)

    kept = tmp_path / "runs" / runs[0].name / "result.json"
    before = kept.stat().st_mtime_ns
    (tmp_path / "runs" / runs[1].name / "result.json").unlink()
    events, progress = _recorder()
    nd.run_plan(plan, tmp_path, progress=progress)
    trained = [info["name"] for event, info in events if event == "done" and not info.get("skipped")]
    assert trained == [runs[1].name]
    assert not any(e == "ceiling" for e, _ in events)
    assert kept.stat().st_mtime_ns == before

    assert nd.run_plan(plan, tmp_path, report_only=True)["results.md"].exists()


def test_a_run_recorded_with_other_settings_is_refused(tmp_path):
    plan = nd.tiny_plan(seeds=1)
    nd.run_plan(plan, tmp_path)
    path = tmp_path / "runs" / plan.runs()[0].name / "result.json"
    result = json.loads(path.read_text())
    result["settings"]["steps"] += 1
    path.write_text(json.dumps(result))
    with pytest.raises(nd.NondecomposableError, match="other settings"):
        nd.run_plan(plan, tmp_path)
    with pytest.raises(nd.NondecomposableError, match="no finished run"):
        nd.run_plan(plan, tmp_path / "empty", report_only=True)


def test_a_result_cut_short_is_trained_again(tmp_path):
    """A damaged result.json (say cut short by a crash before writes were atomic) means the run has
    not finished: a rerun trains it again rather than stopping with a traceback."""
    plan = nd.tiny_plan(seeds=1)
    nd.run_plan(plan, tmp_path)
    path = tmp_path / "runs" / plan.runs()[0].name / "result.json"
    whole = path.read_text()
    path.write_text(whole[: len(whole) // 2])
    events, progress = _recorder()
    nd.run_plan(plan, tmp_path, progress=progress)
    trained = [info["name"] for event, info in events if event == "done" and not info.get("skipped")]
    assert trained == [plan.runs()[0].name]
    assert json.loads(path.read_text())["settings"] == plan.runs()[0].settings()


def test_cli_report_of_an_empty_directory_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli.main, ["experiment", "--plan", "f1", "--report", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "Error: " in result.output and "no finished run" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli.main, ["experiment", "--plan", "auc", "--jobs", "0", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--jobs must be a positive integer" in result.output
    assert not (tmp_path / "x").exists()


def test_dry_run_lists_what_is_left_to_train(tmp_path):
    plan = nd.tiny_plan(seeds=1)
    assert "4 of 4 runs to train" in runner.dry_run(plan, tmp_path, jobs=1)
    nd.run_plan(plan, tmp_path)
    text = runner.dry_run(plan, tmp_path, jobs=1)
    assert "0 of 4 runs to train" in text and "backdrop-p0.75:" in text and "ms per step" in text


def test_a_run_draws_its_own_streams_and_no_global_one():
    """Weights, order and masks come from streams of the run's seed (SeedSequence spawn keys, as
    the main trainer draws its own): a run gives the same result whatever torch's global generator
    holds, and leaves it as it was; no stream of one seed is another seed's stream of another purpose
    (the earlier scheme's seed s + 1 order was seed s's masks)."""
    plan = nd.tiny_plan(seeds=1)
    setup = plan.setups[0]
    run = next(r for r in plan.runs() if r.method == "backdrop")
    train, test = setup.problem.draw(setup.n_train, 100), setup.problem.draw(setup.n_test, 0)
    results = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        results.append(nd.train_run(run, train, test, setup.problem.prior))
        assert torch.equal(torch.get_rng_state(), before)
    assert results[0]["curve"]["test"] == results[1]["curve"]["test"]
    assert results[0]["test_f1"] == results[1]["test_f1"] and results[0]["streams"] == nd.STREAMS == 2
    first = {(seed, purpose): tuple(torch.randint(0, 2**31, (4,), generator=g).tolist())
             for seed in range(4) for purpose, g in streams(seed).items()}
    assert len(set(first.values())) == len(first) == 12
    assert set(streams(0)) == {INIT, ORDER, MASKS}


@pytest.mark.slow
def test_runs_of_the_earlier_streams_are_reported_but_never_mixed_with_new_ones(tmp_path):
    """A result without ``streams`` was drawn with the earlier scheme (torch's global seed): its
    directory's tables can be rebuilt, a rerun that would train new runs beside it is refused, and
    a directory holding both schemes is refused even for the tables."""
    plan = nd.tiny_plan(seeds=1)
    nd.run_plan(plan, tmp_path)
    paths = [tmp_path / "runs" / run.name / "result.json" for run in plan.runs()]
    for path in paths:
        result = json.loads(path.read_text())
        del result["streams"]
        path.write_text(json.dumps(result, indent=1))
    assert nd.run_plan(plan, tmp_path, report_only=True)["results.md"].exists()
    paths[0].unlink()
    with pytest.raises(nd.NondecomposableError, match="earlier random streams .* `report_only=True`") as refused:
        nd.run_plan(plan, tmp_path)
    worded = cli.as_flags(str(refused.value), cli.main.commands["experiment"])  # as msgp experiment says it
    assert "rebuild their tables with --report, or choose another --out" in worded
    assert not paths[0].exists()
    result = json.loads(paths[1].read_text())
    path_of_new = paths[0]
    path_of_new.parent.mkdir(parents=True, exist_ok=True)
    path_of_new.write_text(json.dumps({**result, "name": plan.runs()[0].name, "settings": plan.runs()[0].settings(),
                                       "streams": nd.STREAMS}))
    with pytest.raises(nd.NondecomposableError, match="two schemes of random streams"):
        nd.run_plan(plan, tmp_path, report_only=True)
