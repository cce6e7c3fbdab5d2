"""Reading CelebA from disk: layouts, subsets, several roots, missing and malformed files."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from celeba_model.attributes import CELEBA_ATTRIBUTES, PAPER_ATTRIBUTES, UnknownAttributeError, resolve_attributes
from celeba_model.data.celeba_files import CelebAFormatError, CelebANotFoundError, find_layout, read_attribute_file
from celeba_model.data.index import CelebAIndexError, CelebAWarning, load_index


def test_standard_layout_reads_labels_partition_and_identity(celeba_factory):
    root = celeba_factory(n=10)
    index = load_index([root])
    assert len(index) == 10
    assert index.files[0] == "000001.jpg"
    assert index.labels.shape == (10, 40)
    assert set(np.unique(index.labels)) <= {0, 1}
    assert [len(index.split_indices(s)) for s in ("train", "val", "test")] == [6, 2, 2]
    assert index.identity.tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]
    table = read_attribute_file(root / "list_attr_celeba.txt")
    # File values 1/-1 become 1/0.
    raw = (root / "list_attr_celeba.txt").read_text().splitlines()[2].split()[1:]
    assert table.labels[0].tolist() == [1 if v == "1" else 0 for v in raw]


def test_crlf_files_read_like_lf(celeba_factory):
    a = load_index([celeba_factory(n=8, crlf=False, seed=3)])
    b = load_index([celeba_factory(n=8, crlf=True, seed=3)])
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.partition, b.partition)


def test_torchvision_layout_and_doubled_image_folder(celeba_factory, tmp_path):
    root = celeba_factory(n=6)
    tv = tmp_path / "tv"
    shutil.copytree(root, tv / "celeba")
    assert find_layout(tv).image_dir == tv / "celeba" / "img_align_celeba"
    assert len(load_index([tv])) == 6

    doubled = tmp_path / "doubled"
    shutil.copytree(root, doubled)
    shutil.move(doubled / "img_align_celeba", tmp_path / "inner")
    (doubled / "img_align_celeba").mkdir()
    shutil.move(tmp_path / "inner", doubled / "img_align_celeba" / "img_align_celeba")
    assert len(load_index([doubled])) == 6


def test_subset_on_disk_is_used_and_skips_are_reported(celeba_factory):
    root = celeba_factory(n=10, on_disk={0, 2, 4, 6, 8})
    with pytest.warns(CelebAWarning, match="5 are not on disk"):
        index = load_index([root])
    assert index.files.tolist() == ["000001.jpg", "000003.jpg", "000005.jpg", "000007.jpg", "000009.jpg"]
    assert index.missing_on_disk == 5


def test_reencoded_copy_matches_by_stem(celeba_factory):
    root = celeba_factory(n=4)
    from PIL import Image

    for path in (root / "img_align_celeba").glob("*.jpg"):
        Image.open(path).save(path.with_suffix(".png"))
        path.unlink()
    index = load_index([root])
    assert len(index) == 4 and index.paths[0].suffix == ".png"
    assert index.files[0] == "000001.jpg"


def test_several_roots_use_each_image_once_from_the_first_root(celeba_factory):
    full = celeba_factory(n=10, on_disk={0, 1, 2, 3}, seed=1)
    half = celeba_factory(n=10, size=(89, 109), on_disk={2, 3, 4, 5}, seed=1)
    with pytest.warns(CelebAWarning):
        index = load_index([full, half])
    assert index.files.tolist() == [f"{i:06d}.jpg" for i in range(1, 7)]
    assert index.duplicates == 2
    assert all(str(p).startswith(str(full)) for p in index.paths[:4])
    assert all(str(p).startswith(str(half)) for p in index.paths[4:])


def test_missing_partition_file_gives_seeded_split_by_person(celeba_factory):
    root = celeba_factory(n=60, partition=False)
    with pytest.warns(CelebAWarning, match="seeded 80/10/10 split by person"):
        a = load_index([root], split_seed=0)
    with pytest.warns(CelebAWarning):
        b = load_index([root], split_seed=0)
    with pytest.warns(CelebAWarning):
        c = load_index([root], split_seed=1)
    assert np.array_equal(a.partition, b.partition)
    assert not np.array_equal(a.partition, c.partition)
    for person in np.unique(a.identity):
        assert len(set(a.partition[a.identity == person].tolist())) == 1


def test_partition_rows_missing_keep_person_in_official_split(celeba_factory):
    root = celeba_factory(n=12)
    lines = (root / "list_eval_partition.txt").read_text().splitlines()
    # Drop 000002.jpg: its person (images 1-3) is in train in the official file.
    (root / "list_eval_partition.txt").write_text("\n".join(l for l in lines if not l.startswith("000002")) + "\n")
    with pytest.warns(CelebAWarning, match="no row for 1 images"):
        index = load_index([root])
    assert index.partition[1] == 0


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda lines: lines[:3] + [lines[3].rsplit(" ", 2)[0]] + lines[4:], r"list_attr_celeba.txt:4: expected 41 fields"),
        (lambda lines: lines[:2] + [lines[2].replace(" 1", " 7", 1).replace("-1", " 7", 1)] + lines[3:], r"list_attr_celeba.txt:3: value '7'"),
        (lambda lines: [lines[0], lines[1].replace("Eyeglasses", "Sunglasses")] + lines[2:], r"list_attr_celeba.txt:2: unknown attribute name 'Sunglasses'"),
        (lambda lines: ["many"] + lines[1:], r"list_attr_celeba.txt:1: expected the image count"),
        (lambda lines: lines + [lines[2]], r"image 000001.jpg is listed twice"),
    ],
)
def test_malformed_attribute_file_names_file_and_line(celeba_factory, mutate, message):
    root = celeba_factory(n=5)
    path = root / "list_attr_celeba.txt"
    path.write_text("\n".join(mutate(path.read_text().splitlines())) + "\n")
    with pytest.raises(CelebAFormatError, match=message):
        load_index([root])


def test_malformed_partition_file_names_file_and_line(celeba_factory):
    root = celeba_factory(n=5)
    path = root / "list_eval_partition.txt"
    lines = path.read_text().splitlines()
    lines[3] = "000004.jpg 5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CelebAFormatError, match=r"list_eval_partition.txt:4: partition 5 is not one of \[0, 1, 2\]"):
        load_index([root])


def test_missing_files_and_folders_get_clear_errors(celeba_factory, tmp_path):
    with pytest.raises(CelebANotFoundError, match="does not exist"):
        load_index([tmp_path / "nowhere"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CelebANotFoundError, match="No CelebA data under"):
        load_index([empty])
    root = celeba_factory(n=3)
    (root / "list_attr_celeba.txt").unlink()
    with pytest.raises(CelebANotFoundError, match="no list_attr_celeba.txt"):
        load_index([root])
    none_on_disk = celeba_factory(n=3, on_disk=set())
    with pytest.raises(CelebAIndexError, match="None of the images"):
        load_index([none_on_disk])


def test_attribute_names_resolve_case_insensitively_and_reject_unknown():
    assert resolve_attributes(None) == list(PAPER_ATTRIBUTES)
    assert resolve_attributes(["male", "WAVY_HAIR"]) == ["Male", "Wavy_Hair"]
    assert resolve_attributes(["all"]) == resolve_attributes(["ALL"]) == list(CELEBA_ATTRIBUTES)
    with pytest.raises(UnknownAttributeError, match="alone"):
        resolve_attributes(["all", "Male"])
    with pytest.raises(UnknownAttributeError, match="Did you mean Blond_Hair"):
        resolve_attributes(["Blonde_Hair"])
    with pytest.raises(UnknownAttributeError, match="listed twice"):
        resolve_attributes(["Male", "male"])


def test_attribute_labels_select_columns_by_name(celeba_factory):
    index = load_index([celeba_factory(n=6)])
    labels = index.attribute_labels(["Young", "Male"])
    assert labels.shape == (6, 2)
    assert np.array_equal(labels[:, 0], index.labels[:, 39])
    assert np.array_equal(labels[:, 1], index.labels[:, 20])


def _replace_value(line: str, column: int, value: str) -> str:
    """The line with the value of attribute ``column`` (0-based) replaced."""
    fields = line.split()
    fields[column + 1] = value
    return " ".join(fields)


@pytest.mark.parametrize("value", ["-12", "0", "11", "+1", "1.0", "-1-1", "01", "-0"])
def test_attribute_values_other_than_1_and_minus_1_are_refused(celeba_factory, value):
    root = celeba_factory(n=5)
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[5] = _replace_value(lines[5], 20, value)  # line 6, attribute Male
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CelebAFormatError, match=rf"list_attr_celeba.txt:6: value '{re.escape(value)}' for Male is not 1 or -1"):
        read_attribute_file(path)


@pytest.mark.parametrize("declared", ["999999", "4", "0"])
def test_a_count_line_that_disagrees_with_the_rows_is_refused(celeba_factory, declared):
    root = celeba_factory(n=5)
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([declared] + lines[1:]) + "\n")
    with pytest.raises(CelebAFormatError, match=rf"list_attr_celeba.txt:1: .*{int(declared):,} images.* 5 "):
        read_attribute_file(path)


def test_list_files_with_a_utf8_bom_read_like_plain_ones(celeba_factory):
    plain = load_index([celeba_factory(n=8, seed=4)])
    root = celeba_factory(n=8, seed=4, crlf=True)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt"):
        path = root / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as Windows Notepad saves "UTF-8 with BOM"
    with_bom = load_index([root])
    assert with_bom.files.tolist() == plain.files.tolist()
    assert np.array_equal(with_bom.labels, plain.labels)
    assert np.array_equal(with_bom.partition, plain.partition)
    assert np.array_equal(with_bom.identity, plain.identity)
