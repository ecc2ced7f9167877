"""Hub ids resolve through huggingface_hub's snapshot_download; here it serves local folders of the
published layouts, so the real code path (ids, allow_patterns, subfolders) runs without a network."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from foleycrafter import FoleyCrafterPipeline
from foleycrafter.loaders import image_encoder_folder
from foleycrafter.release import resolve_folder


@pytest.fixture
def fake_hub(monkeypatch, release_folders, tmp_path):
    base, adapters, encoder = release_folders
    repos = {
        "auffusion/auffusion-full-no-adapter": base,
        "ymzhang319/FoleyCrafter": adapters,
        "h94/IP-Adapter": encoder,
    }
    requests = []

    def snapshot_download(repo_id, allow_patterns=None, **kwargs):
        if repo_id not in repos:
            raise OSError(f"Repository Not Found for url: https://huggingface.co/{repo_id}")
        requests.append((repo_id, allow_patterns))
        source = repos[repo_id]
        target = tmp_path / "cache" / repo_id.replace("/", "--")
        for file in source.rglob("*"):
            relative = file.relative_to(source).as_posix()
            if file.is_file() and (
                allow_patterns is None or any(fnmatch.fnmatch(relative, p) for p in allow_patterns)
            ):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target / relative)
        target.mkdir(parents=True, exist_ok=True)
        return str(target)

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    return requests


def test_hub_ids_load_the_released_layout(fake_hub, release_pipe, clip):
    pipe = FoleyCrafterPipeline.from_pretrained(
        "auffusion/auffusion-full-no-adapter",
        adapters="ymzhang319/FoleyCrafter",
        image_encoder="h94/IP-Adapter",
    )
    pipe.set_progress_bar_config(disable=True)
    asked = {repo for repo, _ in fake_hub}
    assert asked == {"auffusion/auffusion-full-no-adapter", "ymzhang319/FoleyCrafter", "h94/IP-Adapter"}
    kwargs = {"prompt": "x", "video": clip, "num_inference_steps": 2}
    ours = pipe(generator=torch.Generator().manual_seed(0), **kwargs).audios[0]
    local = release_pipe(generator=torch.Generator().manual_seed(0), **kwargs).audios[0]
    np.testing.assert_array_equal(ours, local)


def test_unknown_hub_id_is_a_clear_error(fake_hub):
    with pytest.raises(FileNotFoundError, match="Could not find 'someone/nothing'"):
        resolve_folder("someone/nothing")
    with pytest.raises(FileNotFoundError, match="neither an existing folder nor a Hugging Face Hub id"):
        resolve_folder("./no/such/folder")


def test_image_encoder_folder_accepts_both_layouts(release_folders):
    _, _, encoder = release_folders
    nested = image_encoder_folder(encoder)
    assert nested == Path(encoder) / "models" / "image_encoder"
    assert image_encoder_folder(nested) == nested
