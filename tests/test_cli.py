"""The command line: help for every command, clear one-line errors for bad input, and log lines as
-v/-q ask."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from celeba_model.cli import main
from celeba_model.data.index import CelebAWarning

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", ["make-demo", "info", "train"])
def test_every_command_explains_its_options(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--" in text and len(text) > 300


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "celeba_model", "--help"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0 and "make-demo" in result.stdout and "train" in result.stdout


def test_missing_data_root_is_one_clear_line(tmp_path, capsys):
    code = main(["train", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: Data root") and "does not exist" in err and "Traceback" not in err


def test_malformed_attribute_file_is_reported_with_its_line(celeba_factory, capsys):
    root = celeba_factory(n=4)
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[4] = lines[4] + " 1"
    path.write_text("\n".join(lines) + "\n")
    assert main(["info", "--data-root", str(root)]) == 2
    assert "list_attr_celeba.txt:5: expected 41 fields" in capsys.readouterr().err


def test_unknown_attribute_option_suggests_the_right_name(celeba_factory, tmp_path, capsys):
    root = celeba_factory(n=4)
    assert main(["train", "--data-root", str(root), "--out", str(tmp_path / "r"), "--attributes", "Smilling"]) == 2
    assert "Did you mean Smiling" in capsys.readouterr().err


def test_info_prints_counts_and_rates(celeba_factory, capsys):
    root = celeba_factory(n=10, on_disk=set(range(8)))
    with pytest.warns(CelebAWarning, match="2 are not on disk"):
        assert main(["info", "--data-root", str(root), "--attributes", "Male", "Young"]) == 0
    out = capsys.readouterr().out
    assert '"images": 8' in out and "Male" in out and "Young" in out


def test_log_lines_go_to_stderr_as_verbose_and_quiet_ask(celeba_factory, tmp_path, capsys):
    root = celeba_factory(n=12)
    args = ["train", "--data-root", str(root), "--epochs", "1", "--image-size", "32", "--arch", "cnn4",
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "default")]) == 0
    captured = capsys.readouterr()
    assert "Training cnn4" in captured.err and "epoch   1/1  loss" in captured.err
    assert "image cache" not in captured.err  # a debugging detail
    assert json.loads(captured.out)["epochs_run"] == 1  # the command's output, alone on stdout

    assert main(["-v", *args, "--out", str(tmp_path / "verbose")]) == 0
    assert "Reusing the image cache" in capsys.readouterr().err

    assert main(["-q", *args, "--out", str(tmp_path / "quiet")]) == 0
    captured = capsys.readouterr()
    assert "Training" not in captured.err and "epoch" not in captured.err
    assert json.loads(captured.out)["best_epoch"] == 1


def test_predict_keeps_its_own_verbose_option():
    from celeba_model.cli import build_parser

    args = build_parser().parse_args(["predict", "-v", "face.jpg"])
    assert args.verbose and args.log_level == logging.INFO
    args = build_parser().parse_args(["-q", "predict", "face.jpg"])
    assert not args.verbose and args.log_level == logging.WARNING
