"""Checkpoints: safetensors + JSON round trip, and refusal of anything unsafe or mismatched."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from celeba_model.attributes import PAPER_ATTRIBUTES
from celeba_model.data.transforms import PreprocessConfig
from celeba_model.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, update_checkpoint_meta
from celeba_model.models.registry import create_model, model_spec


def _meta(arch="paper", channels=1):
    spec = PreprocessConfig(image_size=64, color="gray" if channels == 1 else "rgb")
    return {
        "model": model_spec(arch, channels, 10, 64).to_dict(),
        "attributes": list(PAPER_ATTRIBUTES),
        "preprocess": spec.to_dict(),
    }


def _save(path, arch="paper", **kwargs):
    torch.manual_seed(0)
    meta = _meta(arch)
    model = create_model(model_spec(arch, 1, 10, 64)).eval()
    save_checkpoint(path, model, meta, **kwargs)
    return model, meta


def test_round_trip_gives_the_same_predictions_and_metadata(tmp_path):
    model, meta = _save(tmp_path / "c.safetensors")
    loaded = load_checkpoint(tmp_path / "c.safetensors")
    x = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    assert loaded.attributes == list(PAPER_ATTRIBUTES)
    assert loaded.preprocess == PreprocessConfig(image_size=64, color="gray")
    assert loaded.spec.arch == "paper" and not loaded.model.training


def test_optimizer_state_round_trips(tmp_path):
    torch.manual_seed(0)
    model = create_model(model_spec("no_conv3", 1, 10, 64))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 1, 64, 64)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "last.safetensors", model, _meta("no_conv3"), optimizer_state=optimizer.state_dict())
    restored = load_checkpoint(tmp_path / "last.safetensors", with_optimizer=True).optimizer_state
    fresh = torch.optim.AdamW(create_model(model_spec("no_conv3", 1, 10, 64)).parameters(), lr=1e-3)
    fresh.load_state_dict(restored)
    original = optimizer.state_dict()
    for index, state in original["state"].items():
        for key, value in state.items():
            assert torch.equal(fresh.state_dict()["state"][index][key], value)
    assert fresh.state_dict()["param_groups"][0]["lr"] == original["param_groups"][0]["lr"]


def test_thresholds_can_be_written_into_the_metadata(tmp_path):
    path = tmp_path / "c.safetensors"
    _save(path)
    update_checkpoint_meta(path, {"thresholds": {"Male": 0.4}})
    assert load_checkpoint(path).thresholds == {"Male": 0.4}


def test_pickle_checkpoints_are_refused_without_unpickling(tmp_path):
    model, _ = _save(tmp_path / "ok.safetensors")
    torch.save(model.state_dict(), tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="pickle-based PyTorch file"):
        load_checkpoint(tmp_path / "model.pt")

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    (tmp_path / "evil.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError, match="pickle-based"):
        load_checkpoint(tmp_path / "evil.safetensors")
    assert not (tmp_path / "pwned").exists()


def test_truncated_and_tampered_files_are_refused(tmp_path):
    path = tmp_path / "c.safetensors"
    _save(path)
    data = path.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "truncated.safetensors")
    tampered = bytearray(data)
    tampered[-100] ^= 0xFF  # flip bits inside the last tensor's data
    (tmp_path / "tampered.safetensors").write_bytes(bytes(tampered))
    with pytest.raises(CheckpointError, match="do not match the digest"):
        load_checkpoint(tmp_path / "tampered.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_checkpoint(tmp_path / "empty.safetensors")


def test_weights_of_another_architecture_are_refused(tmp_path):
    # A no_conv3 checkpoint whose metadata claims the paper architecture.
    model = create_model(model_spec("no_conv3", 1, 10, 64))
    save_checkpoint(tmp_path / "mismatch.safetensors", model, _meta("paper"))
    with pytest.raises(CheckpointError, match="do not fit architecture 'paper'"):
        load_checkpoint(tmp_path / "mismatch.safetensors")


def test_foreign_safetensors_and_unknown_architectures_are_refused(tmp_path):
    save_file({"w": torch.zeros(3)}, tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="not a celeba_model checkpoint"):
        load_checkpoint(tmp_path / "foreign.safetensors")
    model = create_model(model_spec("paper", 1, 10, 64))
    meta = _meta()
    meta["model"] = {**meta["model"], "arch": "vit_huge"}
    save_checkpoint(tmp_path / "unknown.safetensors", model, meta)
    with pytest.raises(CheckpointError, match="Unknown architecture 'vit_huge'"):
        load_checkpoint(tmp_path / "unknown.safetensors")


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    _save(path)
    before = path.read_bytes()

    def crash(fd):  # the bytes are written to the temp file, then the "machine dies"
        raise OSError("disk on fire")

    monkeypatch.setattr("celeba_model.utils.fileio.os.fsync", crash)
    with pytest.raises(OSError, match="disk on fire"):
        _save(path, arch="no_conv3")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]
    assert load_checkpoint(path).spec.arch == "paper"


def test_read_checkpoint_meta_reads_the_header_only(tmp_path, monkeypatch):
    from celeba_model.models.checkpoint import read_checkpoint_meta, recorded_weights_digest

    path = tmp_path / "c.safetensors"
    _, meta = _save(path)
    update_checkpoint_meta(path, {"thresholds": {"Male": 0.4}})
    # No tensor is loaded: the safetensors loader is never called.
    monkeypatch.setattr("celeba_model.models.checkpoint.load_safetensors", lambda *_: pytest.fail("tensors loaded"))
    got = read_checkpoint_meta(path)
    assert got.meta["thresholds"] == {"Male": 0.4}
    assert got.meta["attributes"] == meta["attributes"]
    assert got.weights_sha256 == recorded_weights_digest(path)


def test_read_checkpoint_meta_refuses_bad_files_naming_them(tmp_path):
    from celeba_model.models.checkpoint import FORMAT, read_checkpoint_meta

    with pytest.raises(CheckpointError, match="missing.safetensors.*not found"):
        read_checkpoint_meta(tmp_path / "missing.safetensors")
    (tmp_path / "text.safetensors").write_text("hello, not a checkpoint")
    with pytest.raises(CheckpointError, match="text.safetensors.*not a valid safetensors"):
        read_checkpoint_meta(tmp_path / "text.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.safetensors.*not a valid safetensors"):
        read_checkpoint_meta(tmp_path / "empty.safetensors")
    save_file({"w": torch.zeros(3)}, tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="foreign.safetensors.*not a celeba_model checkpoint"):
        read_checkpoint_meta(tmp_path / "foreign.safetensors")
    for name, meta in (("list", "[1, 2]"), ("broken", "{oops")):
        save_file({"w": torch.zeros(3)}, tmp_path / f"{name}.safetensors",
                  metadata={"format": FORMAT, "meta": meta, "tensors_sha256": "x"})
        with pytest.raises(CheckpointError, match=f"{name}.safetensors.*JSON object"):
            read_checkpoint_meta(tmp_path / f"{name}.safetensors")


def _save_raw_meta(path, meta):
    """Write a checkpoint whose metadata skips save_checkpoint's own checks (as an old or foreign tool might)."""
    import json

    from safetensors.torch import save as save_safetensors

    from celeba_model.models.checkpoint import FORMAT, _digest

    model = create_model(model_spec("paper", 1, 10, 64))
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "meta": json.dumps(meta), "tensors_sha256": _digest(tensors)}
    path.write_bytes(save_safetensors(tensors, metadata=header))
    return path


@pytest.mark.parametrize("key", ["attributes", "model", "preprocess"])
def test_metadata_without_a_required_key_is_refused_naming_the_file(tmp_path, key):
    meta = _meta()
    del meta[key]
    path = _save_raw_meta(tmp_path / f"no_{key}.safetensors", meta)
    with pytest.raises(CheckpointError, match=f"no_{key}.safetensors.*{key}"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "key, value",
    [("attributes", "Male"), ("attributes", [1, 2]), ("attributes", []), ("model", ["paper"]), ("preprocess", 64)],
)
def test_metadata_of_the_wrong_type_is_refused_naming_the_file(tmp_path, key, value):
    path = _save_raw_meta(tmp_path / "typed.safetensors", {**_meta(), key: value})
    with pytest.raises(CheckpointError, match=f"typed.safetensors.*{key}"):
        load_checkpoint(path)


def test_unknown_attribute_names_in_the_metadata_are_refused_naming_the_file(tmp_path):
    names = list(PAPER_ATTRIBUTES)
    names[3] = "Blonde_Hair"
    path = _save_raw_meta(tmp_path / "typo.safetensors", {**_meta(), "attributes": names})
    with pytest.raises(CheckpointError, match=r"typo.safetensors.*Unknown attribute 'Blonde_Hair'.*Blond_Hair"):
        load_checkpoint(path)
    names[3] = "Eyeglasses"  # listed twice
    path = _save_raw_meta(tmp_path / "twice.safetensors", {**_meta(), "attributes": names})
    with pytest.raises(CheckpointError, match=r"twice.safetensors.*listed twice"):
        load_checkpoint(path)
