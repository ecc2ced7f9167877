"""The alignment classifier (issue #17): shapes, native save/load, gradients, clear errors, and that
it can learn time alignment on a hand-built task."""

from __future__ import annotations

import pytest
import torch

from foleycrafter.models import AlignmentClassifier

TINY = dict(latent_channels=4, video_dim=6, hidden_channels=16, num_layers=2, kernel_size=3)


def pair(batch, columns=16, frames=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 8, columns, generator=generator), torch.randn(
        batch, frames, 6, generator=generator
    )


def test_one_logit_per_pair_independent_of_the_rest_of_the_batch():
    torch.manual_seed(0)
    model = AlignmentClassifier(**TINY).eval()
    latents, video = pair(3)
    timesteps = torch.tensor([10, 500, 999])
    logits = model(latents, timesteps, video)
    assert logits.shape == (3,) and torch.all(torch.isfinite(logits))
    alone = model(latents[1:2], timesteps[1:2], video[1:2])
    torch.testing.assert_close(alone, logits[1:2], rtol=1e-5, atol=1e-6)
    # The timestep and the video both matter; any frame count fits any number of columns.
    assert not torch.allclose(model(latents, torch.tensor([999, 10, 500]), video), logits)
    assert not torch.allclose(model(latents, timesteps, video.flip(1)), logits)
    assert model(latents, 250, pair(3, frames=37)[1]).shape == (3,)


def test_saves_and_loads_natively(tmp_path):
    torch.manual_seed(0)
    model = AlignmentClassifier(**TINY).eval()
    model.save_pretrained(tmp_path / "alignment_classifier")
    assert (tmp_path / "alignment_classifier" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = AlignmentClassifier.from_pretrained(tmp_path / "alignment_classifier").eval()
    assert loaded.config.video_dim == 6 and loaded.config.kernel_size == 3
    latents, video = pair(2)
    torch.testing.assert_close(loaded(latents, 100, video), model(latents, 100, video))


def test_gives_a_gradient_with_respect_to_the_latents():
    """Double guidance adds d log p / d z_t: it must exist and be finite."""
    torch.manual_seed(0)
    model = AlignmentClassifier(**TINY).eval()
    latents, video = pair(2)
    latents.requires_grad_(True)
    torch.nn.functional.logsigmoid(model(latents, 300, video)).sum().backward()
    assert latents.grad is not None and torch.all(torch.isfinite(latents.grad))
    assert latents.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "latents, video, message",
    [
        (torch.zeros(1, 3, 8, 16), torch.zeros(1, 10, 6), r"latents must be \(batch, 4, height, columns\)"),
        (torch.zeros(4, 8, 16), torch.zeros(1, 10, 6), "latents must be"),
        (torch.zeros(1, 4, 8, 16), torch.zeros(1, 10, 5), r"video_features must be \(batch, frames, 6\)"),
        (torch.zeros(2, 4, 8, 16), torch.zeros(1, 10, 6), "one row per pair"),
    ],
)
def test_bad_inputs_are_named(latents, video, message):
    with pytest.raises(ValueError, match=message):
        AlignmentClassifier(**TINY)(latents, 0, video)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        AlignmentClassifier(**{**TINY, "kernel_size": 4})
    with pytest.raises(ValueError, match="hidden_channels must be a positive integer"):
        AlignmentClassifier(**{**TINY, "hidden_channels": 0})


def test_learns_to_tell_synchronized_from_shifted_pairs():
    """A hand-built task: the latent has a burst at one column, the video a flash at one frame.
    Pairs whose burst and flash coincide are real; pairs shifted by a quarter window are not. Only
    time alignment separates them (each half of the data has the same bursts and flashes)."""
    columns, frames = 16, 8

    def batch(size, generator):
        position = torch.randint(0, frames, (size,), generator=generator)
        shifted = torch.rand(size, generator=generator) < 0.5
        flash = torch.where(shifted, (position + frames // 4) % frames, position)
        latents = 0.1 * torch.randn(size, 4, 4, columns, generator=generator)
        for row, p in enumerate(position.tolist()):
            latents[row, :, :, 2 * p : 2 * p + 2] += 1.0  # frame p covers columns 2p, 2p + 1
        video = 0.1 * torch.randn(size, frames, 6, generator=generator)
        video[torch.arange(size), flash, 0] += 1.0
        return latents, video, (~shifted).float()

    torch.manual_seed(0)
    model = AlignmentClassifier(**{**TINY, "kernel_size": 3})
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(300):
        latents, video, real = batch(32, generator)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(latents, 0, video), real)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    latents, video, real = batch(256, torch.Generator().manual_seed(2))
    with torch.no_grad():
        accuracy = float(((model(latents, 0, video) > 0).float() == real).float().mean())
    assert accuracy > 0.9


# -- double guidance in the pipeline ------------------------------------------------------------------
def guided(pipe, clip, **kwargs):
    return pipe(
        video=clip,
        num_inference_steps=3,
        temporal_scale=0,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
        **kwargs,
    ).mel_images[0]


def with_classifier(release_pipe, seed=0):
    from foleycrafter import FoleyCrafterPipeline

    torch.manual_seed(seed)
    classifier = AlignmentClassifier(
        latent_channels=release_pipe.unet.config.in_channels,
        video_dim=release_pipe.image_encoder.config.projection_dim,
        hidden_channels=8,
        num_layers=1,
        kernel_size=3,
    )
    return FoleyCrafterPipeline(**{**release_pipe.components, "alignment_classifier": classifier})


def test_double_guidance_moves_the_latents_towards_what_the_classifier_calls_aligned(release_pipe, clip):
    pipe = with_classifier(release_pipe)
    pipe.set_progress_bar_config(disable=True)
    plain = guided(pipe, clip)
    # Scale 0 (the default) is exactly the pipeline without a classifier.
    torch.testing.assert_close(plain, guided(release_pipe, clip))
    calls = []
    handle = pipe.alignment_classifier.register_forward_hook(lambda *args: calls.append(1))
    try:
        steered = guided(pipe, clip, alignment_guidance_scale=50.0)
    finally:
        handle.remove()
    assert len(calls) == len(pipe.scheduler.timesteps)  # once per UNet evaluation (PNDM: steps + 1)
    assert not torch.allclose(steered, plain)
    # The final latents score as more aligned under the classifier than unguided ones.
    features, _ = pipe.alignment_video_features([clip], "cpu")
    with torch.no_grad():
        steered_score, plain_score = (
            float(pipe.alignment_classifier(latents[None], 0, features)) for latents in (steered, plain)
        )
    assert steered_score > plain_score


def test_double_guidance_needs_a_classifier_and_videos(release_pipe, clip):
    with pytest.raises(ValueError, match="needs an alignment classifier"):
        release_pipe(video=clip, num_inference_steps=2, alignment_guidance_scale=1.0)
    pipe = with_classifier(release_pipe)
    with pytest.raises(ValueError, match="every item needs a `video`"):
        pipe(prompt="a", audio_length_in_s=1.0, num_inference_steps=2, alignment_guidance_scale=1.0)
    with pytest.raises(ValueError, match="`alignment_guidance_scale` must be a finite number >= 0"):
        pipe(video=clip, num_inference_steps=2, alignment_guidance_scale=-1.0)


def test_a_pipeline_with_a_classifier_saves_and_loads_it(release_pipe, tmp_path):
    from foleycrafter import FoleyCrafterPipeline

    pipe = with_classifier(release_pipe)
    pipe.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "alignment_classifier" / "config.json").is_file()
    loaded = FoleyCrafterPipeline.from_pretrained(tmp_path / "model")
    assert isinstance(loaded.alignment_classifier, AlignmentClassifier)
    for key, value in pipe.alignment_classifier.state_dict().items():
        torch.testing.assert_close(loaded.alignment_classifier.state_dict()[key], value)


def test_double_guidance_encodes_each_frame_once(release_pipe, clip):
    """The semantic adapter takes the mean of the classifier's frame embeddings instead of running
    the image encoder over the same frames again."""
    pipe = with_classifier(release_pipe)
    pipe.set_progress_bar_config(disable=True)
    images = []
    handle = pipe.image_encoder.register_forward_pre_hook(
        lambda module, args, kwargs: images.append(kwargs["pixel_values"].shape[0]), with_kwargs=True
    )
    try:
        guided(pipe, clip)
        unguided = sum(images)
        images.clear()
        guided(pipe, clip, alignment_guidance_scale=1.0)
    finally:
        handle.remove()
    assert unguided > 0 and sum(images) == unguided


def test_features_over_window_place_a_short_clips_frames_at_their_times():
    from foleycrafter.models.alignment import features_over_window

    features = torch.arange(4, dtype=torch.float32)[:, None].repeat(1, 2) + 1  # frames 1..4, D = 2
    # A full window is unchanged.
    torch.testing.assert_close(features_over_window(features, 5.0, 5.0), features)
    # Half a window: output frames at 0.625, 1.875, 3.125, 4.375 s; the clip's 4 frames each stand
    # for 0.625 s of its 2.5 s, so the frames on screen then are the 2nd, the 4th, then none.
    placed = features_over_window(features, 2.5, 5.0)
    torch.testing.assert_close(placed[:, 0], torch.tensor([2.0, 4.0, 0.0, 0.0]))
    batched = features_over_window(features[None].repeat(3, 1, 1), 2.5, 5.0)
    assert batched.shape == (3, 4, 2)
    torch.testing.assert_close(batched[1], placed)
    with pytest.raises(ValueError, match="must be positive seconds"):
        features_over_window(features, 0.0, 5.0)


def test_the_video_path_reads_features_whatever_their_scale():
    """The classifier's video input does not change when the encoder's features are scaled, and a
    frame that changes stands out in the change channel (the last one)."""
    from foleycrafter.models import AlignmentClassifier

    classifier = AlignmentClassifier(latent_channels=4, video_dim=8, hidden_channels=8, num_layers=1)
    torch.manual_seed(0)
    features = torch.randn(1, 8).repeat(10, 1) + 0.01 * torch.randn(10, 8)
    features[6:] += torch.randn(1, 8)  # the picture changes at frame 6
    features = features[None]
    inputs = classifier.video_inputs(features)
    assert inputs.shape == (1, 10, 2 * 8 + 1)
    torch.testing.assert_close(classifier.video_inputs(features * 100.0), inputs)
    change = inputs[0, :, -1]
    assert int(change.argmax()) == 6 and change[6] > 5 * change[1:6].max()
    plain = AlignmentClassifier(latent_channels=4, video_dim=8, frame_differences=False)
    assert plain.video_inputs(features).shape == (1, 10, 8)


def test_double_guidance_on_a_long_video_in_batched_windows_with_dpm(release_pipe, tmp_path):
    """Two windows (the second longer than the rest of the video), one by one and batched, with
    DPM-Solver++: guided audio of the right length, different from unguided, batching changes only
    rounding."""
    from foleycrafter.schedulers import set_scheduler
    from foleycrafter.testing import synthetic_frames, write_video

    pipe = with_classifier(release_pipe)
    pipe.set_progress_bar_config(disable=True)
    set_scheduler(pipe, "dpm++")
    path = write_video(tmp_path / "long.mp4", synthetic_frames(60, height=24, width=32), 5.0)  # 12 s

    def run(scale, **kwargs):
        return pipe(
            video=str(path),
            num_inference_steps=3,
            onsets=[1.0, 9.8],
            alignment_guidance_scale=scale,
            generator=torch.Generator().manual_seed(0),
            **kwargs,
        )

    plain, guided = run(0.0), run(200.0)
    assert len(guided.windows) == 2 and guided.audios[0].shape == plain.audios[0].shape
    assert guided.audios[0].shape[-1] == round(12.0 * guided.sample_rate)
    assert not torch.allclose(torch.from_numpy(guided.mel_images), torch.from_numpy(plain.mel_images))
    batched = run(200.0, window_batch_size=2)
    torch.testing.assert_close(
        torch.from_numpy(batched.mel_images), torch.from_numpy(guided.mel_images), rtol=0, atol=1e-3
    )
