"""Training that lifts the worst group: cells, balanced batches, Group DRO, JTT, worst-group selection,
and the demo's spurious correlation (Blond_Hair tied to Male in train, as in CelebA)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from celeba_model.attributes import CELEBA_ATTRIBUTES
from celeba_model.cli import main
from celeba_model.data.demo import INFO_FILE, SpuriousCorrelation, make_demo_dataset, plan_demo
from celeba_model.errors import ConfigError
from celeba_model.models.checkpoint import load_checkpoint
from celeba_model.training import TrainConfig, train
from celeba_model.training.dro import STATE_KEY, GroupDRO
from celeba_model.training.groups import CellSpec, cell_accuracy
from celeba_model.training.jtt import ERRORS_FILE, FIRST_RUN
from celeba_model.training.sampling import EpochSampler, balanced_batches, weighted_batches
from celeba_model.utils.distributed import DistInfo

SPURIOUS = ("Blond_Hair", "Male", 0.05)
MINORITY = "Blond_Hair=1,Male=1"  # blond men
train_module = importlib.import_module("celeba_model.training.train")  # the package exports train() by that name


@pytest.fixture(scope="module")
def spurious_root(tmp_path_factory) -> Path:
    """2,000 demo images (seed 1) where 5% of the blond train images are men (one person); val and test
    hold blond men, blond women, other men and other women in about equal numbers."""
    root = tmp_path_factory.mktemp("spurious")
    make_demo_dataset(root, num_images=2000, seed=1, workers=2, progress=False, spurious=SPURIOUS)
    return root


def _config(root: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(data_roots=[str(root)], out=str(out), cache_dir=str(out.parent / "cache"), image_size=32,
                  color="rgb", lr=3e-3, epochs=6, attributes=["Blond_Hair", "Male"], group_by=["Male"],
                  progress=False)
    return TrainConfig(**{**values, **overrides})


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# --- Cells and sampling ------------------------------------------------------------------------


def test_cells_are_target_by_group_with_the_target_as_highest_bit():
    spec = CellSpec("Blond_Hair", ("Male",))
    assert spec.names() == ["Blond_Hair=0,Male=0", "Blond_Hair=0,Male=1", "Blond_Hair=1,Male=0", MINORITY]
    labels = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [1, 1]], dtype=np.uint8)
    assert spec.assign(labels).tolist() == [0, 1, 2, 3, 3]
    two = CellSpec("Smiling", ("Male", "Young"))
    assert two.num_cells == 8 and two.names()[5] == "Smiling=1,Male=0,Young=1"

    accuracy = cell_accuracy(spec, np.array([0, 0, 2, 3, 3]), np.array([0, 0, 1, 1, 1]),
                             np.array([0.1, 0.7, 0.9, 0.4, 0.5]))
    assert accuracy.accuracy == {"Blond_Hair=0,Male=0": 0.5, "Blond_Hair=0,Male=1": None,
                                 "Blond_Hair=1,Male=0": 1.0, MINORITY: 0.5}
    assert accuracy.worst == 0.5  # a cell without images does not count


def test_balanced_batches_hold_every_cell_equally_and_repeat_from_the_seed():
    cells = np.repeat([0, 1, 2, 3], [500, 6, 300, 194])  # cell 1 is rare
    batches = balanced_batches(cells, 4, 10, 200, np.random.default_rng(5))
    for batch in batches:
        counts = np.bincount(cells[batch], minlength=4)
        assert sorted(counts.tolist()) == [2, 2, 3, 3]  # 10 over 4 cells: the remainder goes to random cells
    shares = np.bincount(cells[np.concatenate(batches)], minlength=4) / 2000
    assert np.allclose(shares, 0.25, atol=0.02)
    assert len(set(np.concatenate(batches)[cells[np.concatenate(batches)] == 1].tolist())) == 6  # drawn again and again

    rows = np.arange(1000) * 3  # index rows of the train split
    sampler = EpochSampler(rows, cells=cells, num_cells=4)
    epoch = sampler.epoch(32, seed=11)
    assert len(epoch) == len(EpochSampler(rows).epoch(32, seed=11)) == 32  # plain training's steps
    assert all(np.isin(b, rows).all() for b in epoch)
    assert all(np.array_equal(a, b) for a, b in zip(epoch, sampler.epoch(32, seed=11)))  # the seed decides
    assert not all(np.array_equal(a, b) for a, b in zip(epoch, sampler.epoch(32, seed=12)))
    # Under torchrun each of 2 ranks takes half of the same global batch of 64.
    halves = [sampler.epoch(32, seed=11, info=DistInfo(rank=r, world_size=2)) for r in (0, 1)]
    assert len(halves[0]) == 16 and all(len(b) == 32 for b in halves[0] + halves[1])


def test_upweighted_images_are_drawn_that_many_times_as_often():
    weights = np.where(np.arange(1000) < 50, 20.0, 1.0)  # 50 "errors" at weight 20
    drawn = np.concatenate(weighted_batches(weights, 100, 200, np.random.default_rng(0)))
    per_error = np.isin(drawn, np.arange(50)).sum() / 50
    per_other = (~np.isin(drawn, np.arange(50))).sum() / 950
    assert 17 < per_error / per_other < 23


# --- Group DRO ---------------------------------------------------------------------------------


def test_group_dro_loss_and_weights_match_a_hand_computation():
    dro = GroupDRO(num_cells=4, step=0.1)
    per_image = torch.tensor([1.0, 3.0, 2.0, 4.0], requires_grad=True)
    cells = torch.tensor([0, 0, 1, 3])
    loss = dro.loss(per_image, cells)
    # Cell losses: (1+3)/2 = 2, 2, none in cell 2 (loss 0), 4; q starts uniform.
    q = np.exp(0.1 * np.array([2.0, 2.0, 0.0, 4.0])) / 4
    q /= q.sum()
    assert np.allclose(dro.q.numpy(), q, rtol=1e-6)
    assert loss.item() == pytest.approx(float(q @ [2.0, 2.0, 0.0, 4.0]), rel=1e-6)
    loss.backward()
    # Each image's gradient is its cell's weight over the cell's size.
    assert np.allclose(per_image.grad.numpy(), [q[0] / 2, q[0] / 2, q[1], q[3]], rtol=1e-6)
    # The weights carry over to the next step.
    dro.loss(torch.tensor([1.0, 1.0, 1.0, 1.0]), torch.tensor([0, 1, 2, 3]))
    q2 = q * np.exp(0.1)
    assert np.allclose(dro.q.numpy(), q2 / q2.sum(), rtol=1e-6)

    # Called as a loss: each image's loss is its mean binary cross-entropy over the attributes.
    logits, targets = torch.tensor([[2.0, -1.0], [0.5, 0.5]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    fresh = GroupDRO(num_cells=2, step=0.01)
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(dim=1)
    weights = torch.softmax(0.01 * per, dim=0)  # one image per cell, from uniform q
    assert fresh(logits, targets, torch.tensor([0, 1])).item() == pytest.approx((weights @ per).item(), rel=1e-6)
    restored = GroupDRO(num_cells=4, step=0.1)
    restored.load_state_dict(dro.state_dict())
    assert torch.equal(restored.q, dro.q)


def test_resume_with_group_dro_and_balance_equals_the_uninterrupted_run(spurious_root, tmp_path, monkeypatch):
    common = dict(epochs=3, group_dro=True, group_balance=True, augment=True, dro_step=0.05)
    train(_config(spurious_root, tmp_path / "full", **common))

    # The same run, stopped right after its first epoch is saved, then resumed.
    real_save = train_module.save_epoch

    def save_then_stop(out, meta, *args, **kwargs):
        real_save(out, meta, *args, **kwargs)
        if meta["training"]["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_epoch", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(_config(spurious_root, tmp_path / "stopped", **common))
    monkeypatch.setattr(train_module, "save_epoch", real_save)
    assert len(_history(tmp_path / "stopped")) == 1
    train(_config(spurious_root, tmp_path / "stopped", **common), resume=True)

    full = load_file(tmp_path / "full" / "last.safetensors")
    resumed = load_file(tmp_path / "stopped" / "last.safetensors")
    assert full.keys() == resumed.keys() and f"state.{STATE_KEY}" in full
    for name in full:
        assert torch.equal(full[name], resumed[name]), name
    strip = lambda out: [{k: v for k, v in r.items() if "seconds" not in k and "per_s" not in k}  # noqa: E731
                         for r in _history(out)]
    assert strip(tmp_path / "stopped") == strip(tmp_path / "full")
    q = _history(tmp_path / "full")[-1]["dro_q"]
    assert max(q.values()) > 0.26  # the weights moved off uniform, and came back on resume


# --- The headline: ERM fails blond men, Group DRO and balancing lift them ------------------------


@pytest.fixture(scope="module")
def method_runs(spurious_root, tmp_path_factory) -> dict[tuple[str, int], Path]:
    """ERM, Group DRO and balanced batches on the spurious demo, 6 epochs at 32x32 RGB, seeds 0 and 1,
    keeping every epoch and picking best.safetensors by worst-group accuracy."""
    base = tmp_path_factory.mktemp("methods")
    options = {"erm": {}, "dro": {"group_dro": True}, "balance": {"group_balance": True}}
    runs = {}
    for method, extra in options.items():
        for seed in (0, 1):
            out = base / f"{method}-{seed}"
            train(_config(spurious_root, out, seed=seed, select="worst-group", keep_epochs=True, **extra))
            runs[method, seed] = out
    return runs


def test_erm_fails_the_minority_cell_and_group_dro_or_balancing_lift_it(method_runs):
    # The spurious demo: blond men are rare in train, as common as the other cells in val.
    cells = _history(method_runs["erm", 0])[0]["val_group_accuracy"]
    assert set(cells) == {"Blond_Hair=0,Male=0", "Blond_Hair=0,Male=1", "Blond_Hair=1,Male=0", MINORITY}
    meta = load_checkpoint(method_runs["erm", 0] / "last.safetensors").meta["training"]
    train_counts = meta["groups"]["train_images"]
    # 5% of the blond train images are men, before the 2% label noise adds some.
    assert train_counts[MINORITY] < 0.15 * train_counts["Blond_Hair=1,Male=0"]

    def worst(method: str) -> float:  # the last epoch's val worst-group accuracy, mean of seeds 0 and 1
        return float(np.mean([_history(method_runs[method, s])[-1]["val_worst_group_accuracy"] for s in (0, 1)]))

    def minority(method: str) -> float:
        return float(np.mean([_history(method_runs[method, s])[-1]["val_group_accuracy"][MINORITY] for s in (0, 1)]))

    # Measured on a 2-core CPU (torch 2.14.1), last epoch, seeds 0 and 1: worst-group accuracy ERM .06 and
    # .06 (blond men), Group DRO .79 and .60 (blond men .79 and .79), balanced batches .71 and .74 (blond
    # men); val macro-F1 is higher too (ERM .87, DRO .93, balanced .90-.93).
    assert worst("erm") < 0.4 and minority("erm") < 0.4
    assert worst("dro") > worst("erm") + 0.25 and minority("dro") > minority("erm") + 0.25
    assert worst("balance") > worst("erm") + 0.25 and minority("balance") > minority("erm") + 0.25


def test_select_worst_group_keeps_the_epoch_with_the_best_worst_cell(method_runs):
    out = method_runs["dro", 1]
    history = _history(out)
    scores = [r["val_worst_group_accuracy"] for r in history]
    best = int(np.argmax(scores)) + 1  # the first epoch with the highest figure
    kept = [p.name for p in sorted(out.glob("epoch-*.safetensors"))]
    assert kept == [f"epoch-{e:03d}.safetensors" for e in range(1, 7)]
    assert load_checkpoint(out / "best.safetensors").meta["training"]["best_epoch"] == best
    best_weights, kept_weights = load_file(out / "best.safetensors"), load_file(out / f"epoch-{best:03d}.safetensors")
    assert best_weights.keys() == kept_weights.keys()
    assert all(torch.equal(best_weights[k], kept_weights[k]) for k in best_weights)
    meta = load_checkpoint(out / "last.safetensors").meta["training"]
    assert meta["best_val_worst_group_accuracy"] == max(scores)
    assert meta["best_val_macro_f1"] == history[best - 1]["val_macro_f1"]
    second = load_checkpoint(out / "epoch-002.safetensors")
    assert second.meta["training"]["epoch"] == 2 and "optimizer" not in second.meta  # weights only


# --- JTT ---------------------------------------------------------------------------------------


def test_jtt_upweights_what_its_first_run_gets_wrong(spurious_root, tmp_path):
    config = _config(spurious_root, tmp_path / "jtt", epochs=2, jtt=True, jtt_epochs=1, jtt_upweight=5.0)
    result = train(config)
    out = tmp_path / "jtt"
    assert len(_history(out / FIRST_RUN)) == 1 and len(_history(out)) == 2 and result.epochs_run == 2

    # The error set: the train images whose Blond_Hair the first run's final weights get wrong.
    from celeba_model.data.cache import load_or_build_cache
    from celeba_model.data.index import load_index
    from celeba_model.evaluation.batched import predict_probabilities

    first = load_checkpoint(out / FIRST_RUN / "last.safetensors")
    index = load_index([spurious_root])
    rows = index.split_indices("train")
    cache = load_or_build_cache(index.paths, first.preprocess, config.cache_dir, progress=False)
    probs = predict_probabilities(first.model, cache.images, rows, first.preprocess, torch.device("cpu"))
    truth = index.attribute_labels(["Blond_Hair"], rows)[:, 0].astype(bool)
    wrong = {index.files[r] for r, p, t in zip(rows, probs[:, 0], truth) if (p >= 0.5) != t}
    saved = json.loads((out / ERRORS_FILE).read_text())
    assert set(saved["files"]) == wrong and saved["error_set_size"] == len(wrong) > 0
    jtt_meta = load_checkpoint(out / "last.safetensors").meta["training"]["jtt"]
    assert jtt_meta["error_set_size"] == len(wrong) and jtt_meta["train_images"] == len(rows)
    assert jtt_meta["upweight"] == 5.0

    # Resuming the finished run reads the error set back instead of training the first run again.
    before = (out / FIRST_RUN / "last.safetensors").stat().st_mtime_ns
    assert train(config, resume=True).epochs_run == 2
    assert (out / FIRST_RUN / "last.safetensors").stat().st_mtime_ns == before


# --- Options -----------------------------------------------------------------------------------


def _train_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data-root", str(root), "--out", str(out), "--epochs", "1", "--image-size", "32",
            "--no-progress", *extra]


@pytest.mark.parametrize("options, message", [
    (["--group-by", "Smilling"], "Unknown attribute 'Smilling'"),
    (["--group-dro"], "group_dro needs group_by"),
    (["--group-balance", "--select", "worst-group"], "group_balance, select worst-group needs group_by"),
    (["--group-by", "Male", "--group-target", "Wavy_Hair"], "group_target Wavy_Hair is not one of the trained"),
    (["--group-by", "Male,Eyeglasses"], "group_by cannot hold the group target Eyeglasses"),
    (["--group-by", "Male", "--dro-step", "0"], "dro_step must be a positive number"),
    (["--jtt", "--jtt-epochs", "1"], "jtt_epochs must be at least 1 and fewer than epochs (1)"),
    (["--jtt", "--group-by", "Male", "--group-dro", "--epochs", "3"],
     "cannot be combined with group_balance or group_dro"),
    (["--jtt", "--epochs", "3", "--jtt-upweight", "0.5"], "jtt_upweight must be a number of at least 1"),
])
def test_a_bad_group_option_is_refused_before_anything_is_written(celeba_factory, tmp_path, capsys, options, message):
    root = celeba_factory(n=12)
    out = tmp_path / "run"
    assert main(_train_args(root, out, *options)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_a_grouping_attribute_missing_from_a_root_is_refused(celeba_factory, tmp_path, capsys):
    root = celeba_factory(n=12)
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    male = CELEBA_ATTRIBUTES.index("Male")
    header = [n for j, n in enumerate(lines[1].split()) if j != male]
    rows = [" ".join([r.split()[0], *[v for j, v in enumerate(r.split()[1:]) if j != male]]) for r in lines[2:]]
    (root / "list_attr_celeba.txt").write_text("\n".join([lines[0], " ".join(header), *rows]) + "\n")  # no Male column
    out = tmp_path / "run"
    assert main(_train_args(root, out, "--attributes", "Smiling", "--group-by", "Male")) == 2
    err = capsys.readouterr().err
    assert "--group-by and its target need labels for every image" in err and "Male" in err
    assert not out.exists()


def test_group_options_are_recorded_and_locked_on_resume(celeba_factory, tmp_path, capsys):
    root = celeba_factory(n=12)
    out = tmp_path / "run"
    assert main(_train_args(root, out, "--group-by", "male", "--attributes", "Smiling", "Young")) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["group_by"], saved["group_target"], saved["select"]) == (["Male"], "Smiling", "macro-f1")
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--group-dro", "--no-progress"]) == 2
    assert "group_dro: run has False, asked for True" in capsys.readouterr().err

    # A run from before these options existed resumes: its missing settings are their defaults.
    plain = tmp_path / "plain"
    assert main(_train_args(root, plain)) == 0
    old = {k: v for k, v in json.loads((plain / "config.json").read_text()).items()
           if k not in ("group_by", "group_target", "group_balance", "group_dro", "dro_step", "jtt", "jtt_epochs",
                        "jtt_upweight", "select", "keep_epochs")}
    (plain / "config.json").write_text(json.dumps(old))
    assert main(["train", "--out", str(plain), "--resume", "--no-progress"]) == 0


def test_group_config_resolves_names_and_defaults_the_target():
    config = TrainConfig(data_roots=["x"], out="y", attributes=["blond_hair", "Male"], group_by=["young"])
    assert (config.group_by, config.group_target) == (["Young"], "Blond_Hair")
    with pytest.raises(ConfigError, match="select must be one of"):
        TrainConfig(data_roots=["x"], out="y", group_by=["Young"], select="best")
    with pytest.raises(ConfigError, match="group_by needs at least one attribute"):
        TrainConfig(data_roots=["x"], out="y", group_by=[])


# --- The demo's spurious correlation -----------------------------------------------------------


def test_spurious_demo_ties_blond_to_women_in_train_only():
    plans = plan_demo(3000, seed=0, spurious=("Blond_Hair", "Male", 0.05))
    truth = {(p.traits.hair_color == "blond", p.traits.male) for p in plans}
    assert len(truth) == 4
    for split in (0, 1, 2):
        chosen = [p for p in plans if p.partition == split]
        blond = [p for p in chosen if p.traits.hair_color == "blond"]
        if split == 0:
            men_share = np.mean([p.traits.male for p in blond])
            assert 0.0 < men_share <= 0.08, men_share  # 5%, to the nearest person, and never none
            continue
        for male in (True, False):  # val and test: half of the men and half of the women are blond
            people = {p.identity: p.traits.hair_color == "blond" for p in chosen if p.traits.male == male}
            assert 0.25 <= np.mean(list(people.values())) <= 0.75, (split, male, people)
    # Labels follow the drawn hair (up to the 2% label noise).
    column = CELEBA_ATTRIBUTES.index("Blond_Hair")
    agree = np.mean([(p.labels[column] == 1) == (p.traits.hair_color == "blond") for p in plans])
    assert agree > 0.96
    # Only who shows the target changes: the people and their splits are the standard demo's.
    standard = plan_demo(3000, seed=0)
    assert [(p.identity, p.partition) for p in standard] == [(p.identity, p.partition) for p in plans]


def test_spurious_settings_are_checked_and_recorded(tmp_path, capsys):
    assert SpuriousCorrelation.parse("blond_hair, male ,0.1") == SpuriousCorrelation("Blond_Hair", "Male", 0.1)
    for bad, message in [("Smiling,Male,0.1", "the demo can tie only"), ("Blond_Hair,Bangs,0.1", "the group must be"),
                         ("Blond_Hair,Male,1.5", "share must be a number from 0 to 1"),
                         ("Blond_Hair,Male", "TARGET,GROUP,SHARE")]:
        with pytest.raises(ConfigError, match=message):
            SpuriousCorrelation.parse(bad)

    root = tmp_path / "demo"
    assert main(["make-demo", "--out", str(root), "--num-images", "60", "--workers", "1",
                 "--spurious", "Blond_Hair,Male,0.02"]) == 0
    assert json.loads((root / INFO_FILE).read_text())["spurious"] == ["Blond_Hair", "Male", 0.02]
    # Another setting is another dataset: refused without --overwrite, as for --seed.
    with pytest.raises(ConfigError, match="spurious Blond_Hair,Male,0.02"):
        make_demo_dataset(root, num_images=60, workers=1, progress=False)
    capsys.readouterr()
    assert main(["make-demo", "--out", str(tmp_path / "bad"), "--spurious", "Blond_Hair,Male,2"]) == 2
    assert "share must be a number from 0 to 1" in capsys.readouterr().err
