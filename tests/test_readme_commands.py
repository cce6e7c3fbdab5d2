"""Every command of the README's "Command line" section runs, in order, as written.

Only the data paths are substituted: /data/celeba becomes a small generated demo root,
/data/celeba_small a half-resolution copy of it (a resized copy, as the README describes), and the
photos folder real-looking faces. So the documentation cannot drift from the code again.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from PIL import Image

from celeba_model.cli import main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "docs" / "command-line.md"  # the README's "Command line" section moved there, as "Commands"


def readme_commands(section: str = "Commands") -> list[str]:
    """The shell commands of a README section, continuation lines joined, comments dropped."""
    text = README.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", body, flags=re.S):
        joined = block.replace("\\\n", " ")
        commands += [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return commands


@pytest.fixture
def readme_data(demo_root, tmp_path) -> dict[str, str]:
    """What the README's example paths stand for here."""
    small = tmp_path / "celeba_small"
    shutil.copytree(demo_root, small, ignore=shutil.ignore_patterns("img_align_celeba"))
    (small / "img_align_celeba").mkdir()
    for path in sorted((demo_root / "img_align_celeba").glob("*.jpg")):
        with Image.open(path) as image:
            image.resize((image.width // 2, image.height // 2)).save(small / "img_align_celeba" / path.name)
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted((demo_root / "img_align_celeba").glob("*.jpg"))[:3]:
        shutil.copyfile(path, photos / path.name)
    return {"/data/celeba_small": str(small), "/data/celeba": str(demo_root), "~/photos": str(photos)}


def _substitute(command: str, paths: dict[str, str]) -> str:
    for example, here in paths.items():  # longest first: /data/celeba_small before /data/celeba
        command = re.sub(re.escape(example) + r"(?=[/\s]|$)", here, command)
    return command


def test_every_readme_command_runs_in_order(readme_data, tmp_path, monkeypatch, capsys):
    commands = readme_commands()
    assert len(commands) >= 12, commands
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("CELEBA_WORKSPACE", raising=False)
    monkeypatch.setenv("CELEBA_MODEL_CACHE", str(tmp_path / "cache"))
    for command in commands:
        words = shlex.split(_substitute(command, readme_data))
        assert words[:3] == ["python", "-m", "celeba_model"], f"not a celeba_model command: {command}"
        code = main(words[3:])
        captured = capsys.readouterr()
        assert code == 0, f"{command}\n-> exit {code}\n{captured.err[-2000:]}"
