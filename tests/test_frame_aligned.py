"""The frame-aligned semantic adapter: time masks on hand-built cases, the attention processor, the
native format, and the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foleycrafter.frame_aligned import (
    FrameAlignedAttnProcessor,
    FrameAttention,
    FrameTokenProjection,
    feature_map_size,
    visual_attention_mask,
)
from foleycrafter.timeline import Timeline
from foleycrafter.video import VideoClip


def mask_of(tokens, queries, mode, window=0.0):
    mask = visual_attention_mask(torch.tensor(queries), torch.tensor([tokens]), mode, window)
    return None if mask is None else mask[0].int().tolist()


def test_each_mode_shows_a_query_exactly_the_frames_it_allows():
    tokens = [0.0, 0.5, 1.0, 1.5]
    queries = [0.1, 0.74, 1.6]
    assert mask_of(tokens, queries, "all") is None
    assert mask_of(tokens, queries, "causal") == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    # 0.5 s window: within 0.25 s of the query (0.74 - 0.5 = 0.24 in, 1.0 - 0.74 = 0.26 out).
    assert mask_of(tokens, queries, "framewise", 0.5) == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    assert mask_of(tokens, queries, "framewise", 1.2) == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    # A zero-width window is FoleyGen's frame-wise attention: only the frame on screen.
    assert mask_of(tokens, queries, "framewise", 0.0) == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    # A query before the first frame still sees one frame (no empty softmax).
    assert mask_of([0.2, 0.4], [0.1], "causal") == [[1, 0]]
    assert mask_of([0.2, 0.4], [0.1], "framewise", 0.0) == [[1, 0]]
    with pytest.raises(ValueError, match="visual_attention must be one of"):
        mask_of(tokens, queries, "local")
    with pytest.raises(ValueError, match="non-negative seconds"):
        mask_of(tokens, queries, "framewise", -1.0)


@pytest.mark.parametrize(
    "duration, frames, window_columns",
    [(5.12, 150, 512), (2.0, 30, 512), (10.24, 25, 1024), (3.3, 8, 512)],
)
@pytest.mark.parametrize("window", [0.0, 0.3, 1.0])
def test_masks_follow_the_timeline_at_any_frame_rate_and_window(duration, frames, window_columns, window):
    timeline = Timeline(window_columns=window_columns)
    starts = timeline.frame_start_seconds(duration, frames)
    np.testing.assert_allclose(np.diff(starts), duration / frames)
    for stride in (1, 2, 4):
        width = timeline.latent_columns // stride
        queries = timeline.feature_column_seconds(width, stride)
        # Column centres: the first column's centre is half its span after 0, the last ends with the window.
        assert queries[0] == pytest.approx(stride * 8 / 100 / 2)
        assert queries[-1] + stride * 8 / 100 / 2 == pytest.approx(timeline.window_seconds)
        causal = visual_attention_mask(torch.tensor(queries), torch.tensor(starts)[None], "causal")[0].numpy()
        framewise = visual_attention_mask(
            torch.tensor(queries), torch.tensor(starts)[None], "framewise", window
        )
        framewise = framewise[0].numpy()
        for q, t in enumerate(queries):
            on_screen = max(int(np.searchsorted(starts, t, side="right")) - 1, 0)
            expected_causal = starts <= t
            expected_causal[on_screen] = True
            np.testing.assert_array_equal(causal[q], expected_causal)
            expected_framewise = np.abs(starts - t) <= window / 2 + 1e-9
            expected_framewise[on_screen] = True
            np.testing.assert_array_equal(framewise[q], expected_framewise)


def test_feature_map_levels_round_up_as_strided_convolutions_do():
    assert feature_map_size(32 * 64, 32, 64) == (32, 64, 1)
    assert feature_map_size(8 * 16, 32, 64) == (8, 16, 4)
    assert feature_map_size(3 * 5, 5, 9) == (3, 5, 2)
    with pytest.raises(ValueError, match="no level"):
        feature_map_size(100, 32, 64)
    attention = FrameAttention(Timeline(window_columns=512), 32, 64)
    seconds = attention.query_seconds(16 * 32).numpy()
    # Row-major flattening: every row repeats the columns' times.
    np.testing.assert_allclose(seconds[:32], seconds[32:64])
    assert seconds[1] - seconds[0] == pytest.approx(0.16)


def test_the_time_embedding_tells_the_same_frame_apart_at_different_times():
    torch.manual_seed(0)
    projection = FrameTokenProjection(clip_dim=6, cross_attention_dim=8, time_channels=4)
    embeds = torch.randn(1, 1, 6).expand(1, 3, 6)
    tokens, seconds = projection([embeds, torch.tensor([[0.0, 0.5, 3.0]])])
    assert tokens.shape == (1, 3, 8) and seconds.shape == (1, 3)
    assert (tokens[0, 0] - tokens[0, 1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="frame_embeds"):
        projection([embeds])
    with pytest.raises(ValueError, match="time_channels"):
        FrameTokenProjection(time_channels=3)


@torch.no_grad()
def test_a_query_is_moved_only_by_the_frames_it_may_see():
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    torch.manual_seed(0)
    attn = Attention(query_dim=8, cross_attention_dim=6, heads=2, dim_head=4)
    processor = FrameAlignedAttnProcessor(hidden_size=8, cross_attention_dim=6)
    torch.nn.init.normal_(processor.to_k_ip[0].weight)
    torch.nn.init.normal_(processor.to_v_ip[0].weight)
    timeline = Timeline(window_columns=64)  # latent 8 columns wide, 0.08 s each
    processor.frame_attention = FrameAttention(timeline, 2, 8, "framewise", 0.0)
    hidden = torch.randn(1, 2 * 8, 8)
    text = torch.randn(1, 3, 6)
    tokens = torch.randn(1, 4, 6)
    token_seconds = torch.tensor([[0.0, 0.16, 0.32, 0.48]])  # each frame on screen for 2 columns

    def run(frames):
        return processor(attn, hidden, encoder_hidden_states=(text, [frames, token_seconds]))

    before = run(tokens)
    changed = tokens.clone()
    changed[0, 2] += 1.0  # the frame shown over columns 4 and 5
    moved = (run(changed) - before).abs().amax(dim=-1)[0].view(2, 8)
    assert (moved[:, 4:6] > 1e-4).all()
    assert (moved[:, :4] == 0).all() and (moved[:, 6:] == 0).all()
    # Scale 0 is the plain cross-attention over the text.
    processor.scale = [0.0]
    torch.testing.assert_close(run(tokens), AttnProcessor2_0()(attn, hidden, text), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="frame tokens"):
        processor(attn, hidden, encoder_hidden_states=text)


@pytest.fixture(scope="module")
def frame_aligned_model(model_with_frame_aligned_adapter):
    return model_with_frame_aligned_adapter


def frames_clip(seconds=2.0, count=20):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (count, 32, 32, 3), dtype=np.uint8)
    return VideoClip(frames=frames, frame_times=np.arange(count) * seconds / count, duration=seconds)


def test_a_frame_aligned_adapter_saves_loads_and_generates(frame_aligned_model, native_model):
    from foleycrafter import FoleyCrafterPipeline

    folder, weights = frame_aligned_model
    files = sorted(p.name for p in (folder / "semantic_adapter").iterdir())
    assert files == ["frame_aligned.json", "frame_aligned.safetensors"]
    pipe = FoleyCrafterPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.semantic_adapter_kind == "frame_aligned"
    assert FoleyCrafterPipeline.from_pretrained(native_model).semantic_adapter_kind == "mean"
    assert pipe.unet.encoder_hid_proj.config.framewise_seconds == 0.4
    loaded = pipe.unet.encoder_hid_proj.state_dict()
    for key, value in weights["image_proj"].items():
        torch.testing.assert_close(loaded[key], value)

    clip = frames_clip()

    def run(**kwargs):
        return pipe(
            video=clip,
            num_inference_steps=2,
            onsets=[0.5],
            generator=torch.Generator().manual_seed(0),
            **kwargs,
        ).mel_images

    first = run()
    np.testing.assert_allclose(run(), first, atol=1e-6)
    assert np.abs(run(visual_attention="all") - first).max() > 1e-5
    assert np.abs(run(visual_attention_window=2.0) - first).max() > 1e-5
    # The frames drive it: another video, another sound.
    other = VideoClip(frames=255 - clip.frames, frame_times=clip.frame_times, duration=clip.duration)
    moved = pipe(
        video=other, num_inference_steps=2, onsets=[0.5], generator=torch.Generator().manual_seed(0)
    ).mel_images
    assert np.abs(moved - first).max() > 1e-5
    # Precomputed per-frame embeddings give what the frames give.
    from foleycrafter.semantic import frame_embeddings

    embeds = frame_embeddings(clip.frames, pipe.image_encoder, pipe.feature_extractor)[None]
    given = pipe(
        prompt="",
        audio_length_in_s=clip.duration,
        video_embeds=embeds,
        onsets=[0.5],
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    ).mel_images
    np.testing.assert_allclose(given, first, atol=1e-5)
    with pytest.raises(ValueError, match="visual_attention must be one of"):
        run(visual_attention="local")


def test_wrong_adapter_files_and_options_are_refused(frame_aligned_model, native_model, tmp_path):
    import shutil

    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.release import CheckpointError
    from foleycrafter.semantic import check_semantic_adapter

    folder, weights = frame_aligned_model
    mean_pipe = FoleyCrafterPipeline.from_pretrained(native_model)
    with pytest.raises(ValueError, match="frame-aligned semantic adapter"):
        mean_pipe(video=frames_clip(), num_inference_steps=1, visual_attention="causal")
    with pytest.raises(CheckpointError, match="frame-aligned"):
        check_semantic_adapter(weights, mean_pipe.unet, None, "weights")
    # Loaded from a folder, either kind replaces the other.
    mean_pipe.load_semantic_adapter(folder)
    assert mean_pipe.semantic_adapter_kind == "frame_aligned"
    mean_pipe.load_semantic_adapter(native_model / "semantic_adapter")
    assert mean_pipe.semantic_adapter_kind == "mean"
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(folder / "semantic_adapter" / "frame_aligned.safetensors", lonely)
    with pytest.raises(CheckpointError, match="frame_aligned.json"):
        mean_pipe.load_semantic_adapter(lonely / "frame_aligned.safetensors")
    both = tmp_path / "both"
    shutil.copytree(folder, both)
    shutil.copy(native_model / "semantic_adapter" / "ip_adapter.safetensors", both / "semantic_adapter")
    with pytest.raises(CheckpointError, match="both"):
        FoleyCrafterPipeline.from_pretrained(both)
    with pytest.raises(CheckpointError, match="holds no semantic adapter"):
        mean_pipe.load_semantic_adapter(tmp_path)


def test_a_frame_aligned_adapter_loads_in_the_pipelines_dtype(frame_aligned_model):
    """Loaded in bfloat16 (what --dtype auto picks on some CPUs), every part of the adapter is
    bfloat16 too, and generation runs."""
    from foleycrafter import FoleyCrafterPipeline

    pipe = FoleyCrafterPipeline.from_pretrained(frame_aligned_model[0], dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    adapter = {
        n: p.dtype
        for n, p in pipe.unet.named_parameters()
        if "_ip." in n or n.startswith("encoder_hid_proj.")
    }
    assert adapter and set(adapter.values()) == {torch.bfloat16}
    out = pipe(
        video=frames_clip(), num_inference_steps=2, onsets=[0.5], generator=torch.Generator().manual_seed(0)
    )
    assert np.isfinite(out.audios[0]).all()
