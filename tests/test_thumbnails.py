"""Thumbnails for the Map page's hover faces: one small JPEG per row, written once, bad images left out."""

from __future__ import annotations

from PIL import Image

from celeba_model.data.thumbnails import write_thumbnails


def test_one_small_whole_image_per_row_and_what_could_not_be_read(tmp_path):
    Image.new("RGB", (178, 218), (200, 30, 30)).save(tmp_path / "face.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    paths = [tmp_path / "face.jpg", None, tmp_path / "broken.jpg", tmp_path / "face.jpg"]
    seen = []
    report = write_thumbnails(paths, tmp_path / "thumbs", side=64, on_progress=lambda done, total: seen.append(done))
    assert report.written == 2 and report.existing == 0 and seen == [1, 2, 3, 4]
    assert report.left_out[1] == "not on this machine" and "broken.jpg" in report.left_out[2]
    assert sorted(p.name for p in (tmp_path / "thumbs").iterdir()) == ["0.jpg", "3.jpg"]
    with Image.open(tmp_path / "thumbs" / "0.jpg") as small:
        assert small.size[1] == 64 and 51 <= small.size[0] <= 53 and small.mode == "RGB"  # whole, aspect kept, longer side 64

    again = write_thumbnails(paths, tmp_path / "thumbs", side=64)
    assert again.written == 0 and again.existing == 2  # written once
