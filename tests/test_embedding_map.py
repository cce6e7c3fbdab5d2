"""Embeddings and the embedding map: penultimate features per architecture, stored in the run's order,
the photo path, the map cache, colour values, and the errors a user meets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from celeba_model.analysis.embedding_map import (
    ERROR_TYPES,
    MAP_FILE,
    MapError,
    MapParams,
    compute_map,
    map_for,
    point_colors,
    point_table,
)
from celeba_model.attributes import CELEBA_ATTRIBUTES, PAPER_ATTRIBUTES
from celeba_model.cli import main
from celeba_model.data.index import load_index
from celeba_model.data.transforms import PreprocessConfig
from celeba_model.evaluation.embeddings import (
    EMBEDDINGS_FILE,
    Embeddings,
    EmbeddingsError,
    load_embeddings,
    save_embeddings,
)
from celeba_model.evaluation.evaluate import EvalConfig, evaluate_checkpoint
from celeba_model.evaluation.predictions import Predictions, load_predictions, save_predictions
from celeba_model.models.checkpoint import load_checkpoint, save_checkpoint
from celeba_model.models.features import features_and_logits, head_layer
from celeba_model.models.registry import available_models, create_model, model_spec
from celeba_model.photo.embeddings import embed_run
from celeba_model.photo.evaluate import evaluate_photos

REPO = Path(__file__).resolve().parents[1]
# The classifier head of each architecture and the width of its input, for 32x32 inputs.
HEADS = {"paper": ("classifier.4", 128), "no_conv3": ("classifier.4", 128),
         "no_conv3_no_fc1": ("classifier.1", 8 * 8 * 8), "cnn4": ("classifier", 256), "attrnet": ("classifier", 768)}


def _checkpoint(path: Path, arch: str, seed: int = 0) -> Path:
    """A seeded, untrained checkpoint: 32x32 RGB, the paper's 10 attributes."""
    torch.manual_seed(seed)
    spec = model_spec(arch, 3, len(PAPER_ATTRIBUTES), 32)
    meta = {"model": spec.to_dict(), "attributes": list(PAPER_ATTRIBUTES),
            "preprocess": PreprocessConfig(image_size=32, color="rgb").to_dict()}
    save_checkpoint(path, create_model(spec).eval(), meta)
    return path


@pytest.fixture(scope="module")
def runs(demo_root, tmp_path_factory) -> dict[str, Predictions]:
    """Each registered architecture's val run on the demo, from an untrained checkpoint."""
    base = tmp_path_factory.mktemp("embed")
    index = load_index([demo_root])
    options = EvalConfig(split="val", cache_dir=str(base / "cache"), progress=False)
    return {arch: evaluate_checkpoint(_checkpoint(base / f"{arch}.safetensors", arch), index, base / arch, options)
            for arch in HEADS}


def _head(run: Predictions) -> torch.nn.Linear:
    model = load_checkpoint(run.meta["checkpoint"]["path"]).model
    return dict(model.named_modules())[head_layer(model)]


def test_every_registered_architecture_has_its_head_known():
    # An ensemble is built from trained members (models.ensemble), not from a default config: below.
    assert set(available_models()) - {"ensemble"} == set(HEADS)


def test_an_ensembles_features_are_its_last_members():
    torch.manual_seed(0)
    members = [{"arch": "cnn4", "config": {}}, {"arch": "no_conv3", "config": {}}]
    model = create_model(model_spec("ensemble", 3, 10, 32, {"members": members})).eval()
    assert head_layer(model) == "members.1." + HEADS["no_conv3"][0]
    with torch.no_grad():
        features, _ = features_and_logits(model, torch.randn(4, 3, 32, 32))
    assert features.shape == (4, HEADS["no_conv3"][1])


@pytest.mark.parametrize("arch", sorted(HEADS))
def test_features_are_the_input_of_the_classifier_head(arch):
    torch.manual_seed(0)
    model = create_model(model_spec(arch, 3, 10, 32)).eval()
    assert head_layer(model) == HEADS[arch][0]
    with torch.no_grad():
        features, logits = features_and_logits(model, torch.randn(4, 3, 32, 32))
        head = dict(model.named_modules())[HEADS[arch][0]]
        assert features.shape == (4, HEADS[arch][1])
        assert torch.allclose(head(features), logits, atol=1e-5)  # the head sees exactly these
    assert not head._forward_pre_hooks  # the hook is gone afterwards


@pytest.mark.parametrize("arch", sorted(HEADS))
def test_embed_stores_the_features_of_each_image_in_the_run_order(runs, arch, cache_dir):
    run = runs[arch]
    embeddings = embed_run(run, cache_dir=cache_dir)
    stored = load_embeddings(run.folder, run)
    assert stored.files.tolist() == run.files.tolist()
    assert stored.features.dtype == np.float16 and stored.features.shape == (len(run), HEADS[arch][1])
    assert stored.layer == HEADS[arch][0] and stored.meta["source"] == "aligned"
    assert stored.meta["checkpoint"]["weights_sha256"] == run.meta["checkpoint"]["weights_sha256"]
    assert np.array_equal(stored.features, embeddings.features)
    # The same preprocessing as the evaluation: the head turns the features back into its probabilities.
    with torch.no_grad():
        probabilities = torch.sigmoid(_head(run)(torch.from_numpy(stored.features.astype(np.float32)))).numpy()
    assert np.allclose(probabilities, run.probabilities, atol=2e-3)


def test_current_embeddings_are_reused_and_overwrite_computes_them_again(runs, cache_dir):
    run = runs["cnn4"]
    first = embed_run(run, cache_dir=cache_dir)
    again = embed_run(run, cache_dir=cache_dir)
    assert again.meta["created"] == first.meta["created"] and np.array_equal(again.features, first.features)
    redone = embed_run(run, cache_dir=cache_dir, overwrite=True)
    assert np.array_equal(redone.features, first.features)


def test_a_photo_run_is_embedded_through_the_photo_framing(demo_root, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for face in sorted((demo_root / "img_align_celeba").glob("*.jpg"))[:6]:
        shutil.copyfile(face, photos / face.name)
    [run] = evaluate_photos([REPO / "checkpoints" / "demo" / "paper_rgb.safetensors"], [photos], demo_root,
                            tmp_path / "run", progress=False)
    embeddings = embed_run(run)
    assert embeddings.meta["source"] == "photos" and embeddings.files.tolist() == run.files.tolist()
    with torch.no_grad():
        probabilities = torch.sigmoid(_head(run)(torch.from_numpy(embeddings.features.astype(np.float32)))).numpy()
    assert np.allclose(probabilities, run.probabilities, atol=2e-3)  # the framing evaluate-photos used


def test_the_map_is_cached_and_drawn_again_when_the_features_change(runs, cache_dir):
    run = runs["paper"]
    embed_run(run, cache_dir=cache_dir)
    (run.folder / MAP_FILE).unlink(missing_ok=True)
    first = map_for(run)
    assert first.computed and first.coordinates.shape == (len(run), 2) and first.coordinates.dtype == np.float32
    assert (run.folder / MAP_FILE).is_file()
    second = map_for(run)
    assert not second.computed and np.array_equal(second.coordinates, first.coordinates)
    # Seeded: the same features give the same map.
    assert np.allclose(compute_map(load_embeddings(run.folder).features.astype(np.float32)), first.coordinates)

    embeddings = load_embeddings(run.folder)
    changed = embeddings.features.astype(np.float32)
    changed[:, 0] += 1
    save_embeddings(run.folder, Embeddings(changed.astype(np.float16), embeddings.files, embeddings.meta))
    redrawn = map_for(run)
    assert redrawn.computed and redrawn.meta["features_sha256"] != first.meta["features_sha256"]
    assert map_for(run, MapParams(n_neighbors=5)).computed  # other parameters: another map


def test_a_run_shipped_with_its_map_but_not_its_features_shows_that_map(runs, cache_dir, tmp_path):
    run = runs["no_conv3"]
    embed_run(run, cache_dir=cache_dir)
    drawn = map_for(run)
    copy = tmp_path / "shipped"
    shutil.copytree(run.folder, copy)
    (copy / EMBEDDINGS_FILE).unlink()
    shipped = load_predictions(copy)
    assert np.array_equal(map_for(shipped).coordinates, drawn.coordinates)
    with pytest.raises(MapError, match="drawn|embed"):
        map_for(shipped, MapParams(seed=1))  # cannot be drawn again without features
    other = Predictions(**{**shipped.__dict__, "files": shipped.files[::-1].copy()})
    with pytest.raises(MapError, match="no embeddings"):
        map_for(other)


def test_the_shipped_runs_carry_their_map():
    for split in ("test", "wild_val"):
        run = load_predictions(REPO / "checkpoints" / "celeba" / "runs" / "attrnet" / split)
        drawn = map_for(run, write=False)
        assert not drawn.computed and drawn.coordinates.shape == (len(run), 2)
    assert (REPO / "checkpoints" / "celeba" / "runs" / "attrnet" / "test" / EMBEDDINGS_FILE).is_file()


def _small_run() -> Predictions:
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [1, 0]], dtype=np.uint8)
    probabilities = np.array([[0.9, 0.2], [0.3, 0.8], [0.7, 0.1], [0.1, 0.6], [0.5, 0.5]], dtype=np.float32)
    celeba = np.zeros((5, 40), dtype=np.uint8)
    celeba[:, CELEBA_ATTRIBUTES.index("Wearing_Hat")] = [1, 0, 0, 1, 1]
    celeba[:, CELEBA_ATTRIBUTES.index("Eyeglasses")] = labels[:, 0]
    celeba[:, CELEBA_ATTRIBUTES.index("Male")] = labels[:, 1]
    files = np.array([f"{i}.jpg" for i in range(5)])
    return Predictions(probabilities, labels, files, files, np.array([7, 7, 3, -1, 3]),
                       meta={"attributes": ["Eyeglasses", "Male"]}, celeba_labels=celeba)


def test_colour_values_for_every_choice():
    run = _small_run()
    label = point_colors(run, "label", "Wearing_Hat")  # any of the 40
    assert label.values.tolist() == [1, 0, 0, 1, 1] and label.categories == ["not Wearing_Hat", "Wearing_Hat"]
    predicted = point_colors(run, "prediction", "Eyeglasses", [0.6, 0.5])
    assert predicted.values.tolist() == [1, 0, 1, 0, 0]
    assert point_colors(run, "prediction", "Eyeglasses", 0.5).values.tolist() == [1, 0, 1, 0, 1]
    errors = point_colors(run, "error", "Eyeglasses", [0.6, 0.5])
    assert errors.categories == list(ERROR_TYPES)
    assert [ERROR_TYPES[v] for v in errors.values] == ["TP", "FN", "FP", "TN", "FN"]
    probability = point_colors(run, "probability", "Male")
    assert probability.continuous and np.allclose(probability.values, [0.2, 0.8, 0.1, 0.6, 0.5])
    groups = point_colors(run, "group", group_by=["Male", "Wearing_Hat"])
    assert groups.categories == ["not Male, not Wearing_Hat", "not Male, Wearing_Hat", "Male, not Wearing_Hat",
                                 "Male, Wearing_Hat"]
    assert [groups.categories[v] for v in groups.values][:2] == ["not Male, Wearing_Hat", "Male, not Wearing_Hat"]
    people = point_colors(run, "person")
    assert people.categories == ["person unknown", "person 3", "person 7"] and people.values.tolist() == [2, 2, 1, 0, 1]

    table = point_table(run, "Male", [0.5, 0.7], rows=[1, 3])
    assert table["file"].tolist() == ["1.jpg", "3.jpg"] and table["predicted"].tolist() == [1, 0]
    assert "probability" not in point_table(run, "Wearing_Hat")  # not a model attribute: its label only


def test_bad_colour_choices_are_clear_errors():
    run = _small_run()
    with pytest.raises(MapError, match="not predicted by"):
        point_colors(run, "error", "Wearing_Hat")
    with pytest.raises(MapError, match="colour by one of"):
        point_colors(run, "mood")
    without = Predictions(**{**run.__dict__, "celeba_labels": None})
    with pytest.raises(MapError, match="no labels of Wearing_Hat"):
        point_colors(without, "label", "Wearing_Hat")


def test_runs_without_a_checkpoint_of_ours_cannot_be_embedded(runs, tmp_path):
    run = runs["cnn4"]
    for extra, words in (({"imported": {"source": "x.csv"}}, "imported from another tool"),
                         ({"crossfit": {"folds": 5}}, "crossfit")):
        folder = tmp_path / next(iter(extra))
        save_predictions(folder, Predictions(**{**run.__dict__, "meta": {**run.meta, **extra}}))
        with pytest.raises(EmbeddingsError, match=f"{words}.*no checkpoint of ours"):
            embed_run(folder)


def test_a_moved_or_changed_checkpoint_is_named(runs, tmp_path):
    run = runs["cnn4"]
    moved = Predictions(**{**run.__dict__, "meta": {**run.meta, "checkpoint": {
        **run.meta["checkpoint"], "path": str(tmp_path / "gone.safetensors")}}})
    save_predictions(tmp_path / "moved", moved)
    with pytest.raises(EmbeddingsError, match="gone.safetensors, which is no longer there"):
        embed_run(tmp_path / "moved")
    retrained = _checkpoint(tmp_path / "retrained.safetensors", "cnn4", seed=1)
    changed = Predictions(**{**run.__dict__, "meta": {**run.meta, "checkpoint": {
        **run.meta["checkpoint"], "path": str(retrained)}}})
    save_predictions(tmp_path / "changed", changed)
    with pytest.raises(EmbeddingsError, match="has different weights"):
        embed_run(tmp_path / "changed")


def test_missing_images_are_counted_and_the_root_to_pass_is_named(runs, demo_root, tmp_path, cache_dir, capsys):
    run = runs["cnn4"]
    elsewhere = Predictions(**{**run.__dict__, "paths": np.array([f"/nowhere/{f}" for f in run.files])})
    save_predictions(tmp_path / "elsewhere", elsewhere)
    with pytest.raises(EmbeddingsError, match=rf"{len(run):,} of {len(run):,} images .* --data-root DIR, the CelebA "
                                              rf"folder it was evaluated on \(recorded: {demo_root}"):
        embed_run(tmp_path / "elsewhere")
    assert main(["embed", "--run", str(tmp_path / "elsewhere"), "--no-progress"]) == 2
    assert "are not on this machine" in capsys.readouterr().err
    # Given the data root, the images are found by name there.
    assert main(["embed", "--run", str(tmp_path / "elsewhere"), "--data-root", str(demo_root), "--cache-dir",
                 str(cache_dir), "--no-map", "--no-progress"]) == 0
    assert "features (input of classifier, aligned images)" in capsys.readouterr().out
    assert np.array_equal(load_embeddings(tmp_path / "elsewhere").features, embed_run(run, cache_dir=cache_dir).features)


def test_embeddings_of_a_re_evaluated_run_are_stale(runs, tmp_path, cache_dir):
    run = runs["attrnet"]
    embed_run(run, cache_dir=cache_dir)
    shutil.copytree(run.folder, tmp_path / "run")
    other = Predictions(**{**run.__dict__, "meta": {**run.meta, "checkpoint": {
        **run.meta["checkpoint"], "weights_sha256": "f" * 64}}})
    save_predictions(tmp_path / "run", other)
    with pytest.raises(EmbeddingsError, match="other weights"):
        load_embeddings(tmp_path / "run", load_predictions(tmp_path / "run"))
