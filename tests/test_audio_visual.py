"""The contrastive audio-visual encoder (CAVP, issue #17): shapes, its two losses on hand-built
features, and the alignment classifier carrying its video tower."""

from __future__ import annotations

import pytest
import torch

from foleycrafter.models import AlignmentClassifier, AudioVisualEncoder
from foleycrafter.models.audio_visual import frame_inputs


def encoder(**settings):
    torch.manual_seed(0)
    return AudioVisualEncoder(
        **{"video_dim": 6, "n_mels": 8, "embed_dim": 4, "hidden_channels": 8, "num_layers": 2, **settings}
    )


def test_towers_give_unit_features_per_frame_from_each_clips_own_columns():
    model = encoder()
    frames, log_mel = torch.randn(2, 10, 6), torch.randn(2, 8, 40)
    video, audio = model(frames, log_mel, columns=[40, 20])
    assert video.shape == audio.shape == (2, 10, 4)
    torch.testing.assert_close(video.norm(dim=-1), torch.ones(2, 10))
    # The second clip's audio reads its first 20 columns only: what follows does not matter.
    changed = log_mel.clone()
    changed[1, :, 20:] = 5.0
    _, again = model(frames, changed, columns=[40, 20])
    torch.testing.assert_close(again[1], audio[1])
    assert (again[0] - audio[0]).abs().max() == 0
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        encoder(kernel_size=4)


def test_the_losses_reward_matching_clips_and_matching_stretches():
    model = encoder()
    # Orthogonal per-frame features, identical in both towers: every clip and stretch matches itself.
    basis = torch.eye(16)
    video = basis.reshape(2, 8, 16)
    semantic, temporal = model.contrastive_losses(video, video.clone(), segments=4)
    assert semantic < 0.01 and temporal < 0.01
    # The other clip's audio: the semantic loss is large; stretches out of order: the temporal one.
    swapped, _ = model.contrastive_losses(video, video.flip(0), segments=4)
    _, shuffled = model.contrastive_losses(video, video.roll(2, dims=1), segments=4)
    assert swapped > 5 and shuffled > 5


def test_frame_inputs_scale_frames_and_mark_changes():
    features = torch.zeros(1, 4, 3)
    features[0, :, 0] = 10.0
    features[0, 2:, 1] = 10.0  # the picture changes at frame 2
    inputs = frame_inputs(features)
    assert inputs.shape == (1, 4, 7)
    torch.testing.assert_close(inputs[0, :, :3].norm(dim=-1), torch.full((4,), 3**0.5))
    change = inputs[0, :, -1]
    assert change.argmax() == 2 and change[0] == 0 and change[3] == 0
    assert frame_inputs(features, differences=False).shape == (1, 4, 3)


def test_the_alignment_classifier_reads_frames_through_a_video_tower():
    model = encoder()
    classifier = AlignmentClassifier(latent_channels=4, video_dim=6, hidden_channels=8, num_layers=1,
                                     video_tower=model.video_tower_config())  # fmt: skip
    classifier.frame_tower.load_state_dict(model.video.state_dict())
    latents, frames = torch.randn(2, 4, 4, 16), torch.randn(2, 10, 6)
    logits = classifier(latents, torch.tensor([10, 500]), frames)
    assert logits.shape == (2,)
    # Its input is still the CLIP frames; the tower's output is what the classifier's video path reads.
    with pytest.raises(ValueError, match="video_features must be"):
        classifier(latents, 10, torch.randn(2, 10, 4))
    with pytest.raises(ValueError, match="video_tower reads features of width"):
        AlignmentClassifier(video_dim=5, video_tower=model.video_tower_config())
