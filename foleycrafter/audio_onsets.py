"""The onset detector for audio: where sound events start in a waveform.

This is the one detector the project uses on audio. Training-data preparation labels clips with it
(``onsets_to_frame_labels`` for the video onset detector, ``onsets_to_mel_mask`` for the temporal
controller) and evaluation runs it on generated audio before scoring against ground truth
(:mod:`foleycrafter.eval.onset_metrics`). Keeping one detector keeps labels and scores comparable.

Method (:func:`detect_audio_onsets`) -- spectral flux with adaptive peak picking, then each onset is
moved back to the start of its energy rise. Defaults in brackets; times are given in milliseconds
and converted with the sample rate.

1. **Spectrogram.** Hann-windowed STFT, ``frame_ms`` long [32 ms = 512 samples at 16 kHz], every
   ``hop_ms`` [5 ms = 80 samples]: the detection function has 5 ms resolution. Frame ``n`` is
   centred on sample ``n * hop``. The start is reflect-padded by half a frame, so a sound already
   playing at t = 0 is not an onset; frames that reach past the end are given no flux, because
   the cut-off there is a broadband click. Magnitudes are scaled so that a full-scale sinusoid
   peaks at about 1 (0 dB).
2. **Bands.** The FFT bins (DC excluded) are grouped into ``n_bands`` [64] mel-spaced bands
   (energy summed per band; bands narrower than one FFT bin are merged, so there may be fewer).
   Background noise is averaged over several bins per band, which keeps its frame-to-frame
   fluctuation small.
3. **Log compression.** ``L = log1p(gamma * band / loudest band of the clip)`` [gamma 100: the
   knee of ``log1p`` lies 40 dB below the loudest band]. Strengths are therefore relative to the
   clip's own level: the same clip 20 dB quieter gives the same onsets and strengths.
4. **Flux.** ``D[n] = mean over bands b of max(0, L[n, b] - max(L[n-k, b'] for k in
   1..lag_frames, |b' - b| <= max_filter_bands))`` [lag 2 frames = 10 ms, +-1 band]. Only rising
   energy counts, so a long decay (a ringing partial) contributes nothing; comparing with the
   recent maximum of neighbouring bands (as in "SuperFlux", Boeck & Widmer 2013) keeps a
   decaying noise burst or beating partials, which wobble but do not exceed their recent
   maximum, from adding spurious peaks. ``D`` is the ``envelope`` of the result.
5. **Peak picking.** Frame ``n`` is a candidate when ``D[n]`` is the maximum within
   ``+-peak_window_ms`` [30 ms] and ``D[n] >= threshold[n]``, the larger of

   * the centred moving median of ``D`` over ``median_window_ms`` [200 ms] plus ``delta`` [0.03,
     a mean rise of 0.03 log units per band], and
   * a clip-wide floor, ``median(D) + noise_factor * sigma`` [8], ``sigma`` being the robust spread
     (1.4826 x median absolute deviation) of ``D``. Stationary background noise makes ``D``
     fluctuate around its median; this floor keeps those fluctuations from being read as onsets.

   Also, the frame level (the STFT energy, 0 dB = a full-scale sinusoid) must reach ``silence_db``
   [-60 dBFS] within one frame after the peak: events quieter than that, or faint noise in
   near-silence, are no onsets however they compare to the rest of the clip.

6. **Refinement** (``refine`` [True]). The flux peak is not where the sound starts: for an
   abrupt onset it comes about a quarter frame early (measured on synthetic impacts: 8 +- 1.5 ms
   for a 32 ms frame), never more than half a frame. Each candidate is moved to the start of its
   energy rise, measured on a fine envelope: the trailing moving average of ``|x|`` over
   ``envelope_ms`` [4 ms], in dB (trailing, so it never rises before the sound does). The
   envelope's maximum is found in ``[peak, peak + frame/2 + attack_ms]`` [25 ms], its minimum in
   ``[peak - frame/2, maximum]``; the onset is the sample after the last one below
   ``minimum + rise_fraction * (maximum - minimum)`` [0.3]. It must lie in ``[peak - frame/4,
   peak + frame/2]``; otherwise, or when the envelope rises by less than ``min_rise_db`` [6 dB]
   (an event under a louder one), the onset is ``peak + frame/4``. On synthetic percussive clips
   (modal tones, drums, clicks, noise bursts over background noise) 98 % of the detected onsets
   land within 10 ms of the physical onset (median 0.3 ms); events barely above the background
   noise are missed.
7. **Minimum interval.** Of onsets closer than ``min_interval_ms`` [100 ms], the stronger is kept.
   100 ms is the width an onset is marked with in a timestamp mask (``temporal.DEFAULT_EVENT_SECONDS``):
   closer onsets could not be told apart there, and they are mostly one event's parts (a heel and
   a toe, a splash and its bubbles, a sound's slow attack).

The ``strengths`` of the result are ``D`` at each onset's flux peak (mean rise per band, in natural
log units); rank by them for average precision. Cost: about 40 ms for 10 s of audio. Pure
numpy/scipy (no librosa).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d, median_filter

# Slack (in frames or seconds) so that float rounding, e.g. 0.3 / 3.0 * 150 = 14.999999999999998, does
# not move an onset to the previous frame or make a 50 ms interval shorter than 50 ms.
_EPSILON = 1e-9


@dataclass(frozen=True)
class AudioOnsets:
    """Onsets detected in one waveform.

    Attributes:
        times: onset times in seconds from the start of the clip, sorted, shape (N,).
        strengths: the detection function at each onset's flux peak, shape (N,); larger means a
            more salient onset (use it to rank onsets for average precision).
        envelope: the detection function ``D`` (spectral flux), one value per STFT frame, shape (F,).
        frame_times: centre of each STFT frame in seconds, shape (F,).
        threshold: the adaptive threshold a peak of ``envelope`` had to reach, shape (F,).
        sample_rate: audio samples per second (Hz) of the analysed waveform.
        duration: length of the analysed waveform in seconds.
    """

    times: np.ndarray
    strengths: np.ndarray
    envelope: np.ndarray
    frame_times: np.ndarray
    threshold: np.ndarray
    sample_rate: int
    duration: float

    def __len__(self) -> int:
        return int(self.times.size)


def detect_audio_onsets(
    waveform,
    sample_rate: int = 16000,
    *,
    frame_ms: float = 32.0,
    hop_ms: float = 5.0,
    n_bands: int | None = 64,
    gamma: float = 100.0,
    silence_db: float = -60.0,
    lag_frames: int = 2,
    max_filter_bands: int = 1,
    peak_window_ms: float = 30.0,
    median_window_ms: float = 200.0,
    delta: float = 0.03,
    noise_factor: float = 8.0,
    min_interval_ms: float = 100.0,
    refine: bool = True,
    envelope_ms: float = 4.0,
    attack_ms: float = 25.0,
    rise_fraction: float = 0.3,
    min_rise_db: float = 6.0,
) -> AudioOnsets:
    """Detect sound-event onsets in a mono waveform by spectral flux (method: module docstring).

    Args:
        waveform: samples as a numpy array or torch tensor, shape (samples,) or channels-first
            (channels, samples) (channels are averaged). Full scale is +-1.
        sample_rate: samples per second (Hz). All other lengths are in milliseconds.
        frame_ms: STFT window length (ms); 32 ms = 512 samples at 16 kHz.
        hop_ms: STFT hop (ms), the resolution of the detection function; 5 ms = 80 samples.
        n_bands: number of mel-spaced bands the FFT bins are grouped into; ``None`` uses the
            bins themselves.
        gamma: the log-compression knee lies ``gamma`` (in amplitude) below the loudest band.
        silence_db: an onset must reach this frame level (dBFS, 0 dB = a full-scale sinusoid).
        lag_frames: the flux compares frame ``n`` with the maximum of the ``lag_frames`` frames
            before it.
        max_filter_bands: that maximum also spans the bands within +- this many bands.
        peak_window_ms: a peak must be the maximum of the detection function within +- this (ms).
        median_window_ms: length (ms) of the centred moving median the local threshold starts from.
        delta: how far above that moving median a peak must reach (mean log rise per band).
        noise_factor: clip-wide floor, in robust standard deviations of the detection function
            above its median (rejects stationary-noise fluctuations).
        min_interval_ms: minimum time (ms) between two onsets; the weaker of a closer pair goes.
        refine: move each onset from its flux peak to the start of the energy rise; ``False``
            returns the flux peak frames' centres (about a quarter frame early).
        envelope_ms: length (ms) of the trailing moving average of ``|x|`` used for refinement.
        attack_ms: how long (ms) after the flux frame's end the energy maximum is looked for.
        rise_fraction: the onset is where the envelope has covered this fraction of its rise (dB).
        min_rise_db: with a smaller rise (dB), refinement uses ``peak + frame/4``.

    Returns:
        :class:`AudioOnsets` with times (s) sorted, strengths, and the frame-level envelope,
        threshold and frame times (s) for plotting.

    Raises:
        ValueError: for an empty, non-finite or wrongly shaped waveform, or invalid parameters.
    """
    signal = _as_mono(waveform)
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}.")
    sample_rate = int(sample_rate)
    frame_length = _ms_to_samples(frame_ms, sample_rate, "frame_ms")
    hop = _ms_to_samples(hop_ms, sample_rate, "hop_ms")
    if frame_length < 4:
        raise ValueError(f"frame_ms={frame_ms} gives a {frame_length}-sample window; it needs at least 4.")
    if n_bands is not None and not (isinstance(n_bands, (int, np.integer)) and n_bands > 0):
        raise ValueError(f"n_bands must be a positive integer or None, got {n_bands!r}.")
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}.")
    if not (isinstance(lag_frames, (int, np.integer)) and lag_frames >= 1):
        raise ValueError(f"lag_frames must be an integer >= 1, got {lag_frames!r}.")
    for name, value in (
        ("peak_window_ms", peak_window_ms),
        ("median_window_ms", median_window_ms),
        ("min_interval_ms", min_interval_ms),
        ("delta", delta),
        ("noise_factor", noise_factor),
        ("attack_ms", attack_ms),
        ("min_rise_db", min_rise_db),
    ):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    if not 0 < rise_fraction < 1:
        raise ValueError(f"rise_fraction must lie in (0, 1), got {rise_fraction}.")

    duration = signal.size / sample_rate
    frames_per_ms = sample_rate / hop / 1000.0

    magnitudes = _stft_magnitude(signal, frame_length, hop)
    num_frames = magnitudes.shape[0]
    frame_times = np.arange(num_frames) * hop / sample_rate
    bands = _group_bands(magnitudes, sample_rate, frame_length, n_bands)

    # Relative to the clip's loudest band, so that strengths do not depend on the playback level.
    loudest = float(bands.max(initial=0.0))
    log_bands = np.log1p(gamma * bands / loudest) if loudest > 0 else np.zeros_like(bands)
    flux = np.zeros(num_frames)
    if num_frames > lag_frames:
        # Compare with the loudest of the previous `lag_frames` frames and neighbouring bands: a
        # decaying or noisy band that merely wobbles does not exceed its recent maximum, an onset does.
        spread = maximum_filter1d(log_bands, size=2 * max_filter_bands + 1, axis=1, mode="nearest")
        previous = spread[: num_frames - lag_frames].copy()  # frame n - lag_frames for each n >= lag
        for back in range(1, lag_frames):
            np.maximum(previous, spread[lag_frames - back : num_frames - back], out=previous)
        rise = np.maximum(log_bands[lag_frames:] - previous, 0.0)
        flux[lag_frames:] = rise.mean(axis=1)
    # Frames reaching past the end see the clip cut off: the cut is a broadband click (and a reflected
    # decay would rise again), so they can hold no onset.
    flux[frame_times * sample_rate + frame_length // 2 > signal.size] = 0.0

    median_size = 2 * int(round(median_window_ms * frames_per_ms / 2)) + 1
    local = median_filter(flux, size=median_size, mode="nearest")
    centre = float(np.median(flux))
    sigma = 1.4826 * float(np.median(np.abs(flux - centre)))
    threshold = np.maximum(local + delta, centre + noise_factor * sigma)

    peak_size = 2 * int(round(peak_window_ms * frames_per_ms)) + 1
    is_peak = (
        (flux == maximum_filter1d(flux, size=peak_size, mode="nearest")) & (flux >= threshold) & (flux > 0)
    )
    # On a plateau (equal neighbours) keep only its first frame.
    is_peak[1:] &= flux[1:] > flux[:-1]
    # The sound must become audible within one frame of the peak (the frame then covers the onset).
    # Full-scale sinusoid = 0 dB: its energy in the scaled spectrum is 1 + 2 * 0.5**2 = 1.5.
    frame_level = np.sqrt((magnitudes[:, 1:] ** 2).sum(axis=1) / 1.5)
    is_peak &= _forward_max(frame_level, frame_length // hop) >= 10.0 ** (silence_db / 20.0)
    peak_frames = np.flatnonzero(is_peak)

    strengths = flux[peak_frames]
    peak_samples = peak_frames * hop
    if refine and peak_frames.size:
        envelope_db = _envelope_db(signal, _ms_to_samples(envelope_ms, sample_rate, "envelope_ms"))
        onset_samples = np.array(
            [
                _rise_start(
                    envelope_db,
                    int(peak),
                    frame_length,
                    int(round(attack_ms * sample_rate / 1000.0)),
                    rise_fraction=rise_fraction,
                    min_rise_db=min_rise_db,
                )
                for peak in peak_samples
            ],
            dtype=np.int64,
        )
    else:
        onset_samples = np.minimum(peak_samples, max(signal.size - 1, 0))
    times = onset_samples / sample_rate
    keep = _enforce_min_interval(times, strengths, min_interval_ms / 1000.0)
    order = np.argsort(times[keep], kind="stable")
    return AudioOnsets(
        times=times[keep][order].astype(np.float64),
        strengths=strengths[keep][order].astype(np.float64),
        envelope=flux,
        frame_times=frame_times,
        threshold=threshold,
        sample_rate=sample_rate,
        duration=duration,
    )


def onsets_to_frame_labels(
    times: Sequence[float] | np.ndarray, num_frames: int, duration: float, width_frames: int = 1
) -> np.ndarray:
    """Per-frame onset labels on a grid of ``num_frames`` video frames spread uniformly over a clip.

    Frame ``k`` covers ``[k * duration / num_frames, (k + 1) * duration / num_frames)`` seconds --
    the same grid :meth:`foleycrafter.timeline.Timeline.column_to_detector_frame` assumes at
    inference. An onset at ``t`` seconds labels frame ``floor(t / duration * num_frames)`` and the
    ``width_frames - 1`` frames after it (clipped at the end).

    Args:
        times: onset times in seconds, each in ``[0, duration)``.
        num_frames: frames on the grid (e.g. 150 for the onset detector).
        duration: clip length in seconds.
        width_frames: frames labelled per onset, starting at the onset's frame.

    Returns:
        float32 array (num_frames,) of 0 and 1.
    """
    if not (isinstance(num_frames, (int, np.integer)) and num_frames > 0):
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}.")
    if not (np.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration}.")
    if not (isinstance(width_frames, (int, np.integer)) and width_frames >= 1):
        raise ValueError(f"width_frames must be an integer >= 1, got {width_frames!r}.")
    times = _as_times(times, "times")
    outside = times[(times < 0) | (times >= duration)]
    if outside.size:
        raise ValueError(
            f"onset times must lie within the clip [0, {duration:.3f}) s; got {outside.tolist()}. "
            f"Remove them or check their unit (seconds)."
        )
    labels = np.zeros(int(num_frames), dtype=np.float32)
    first = np.floor(times / duration * num_frames + _EPSILON).astype(np.int64)
    for frame in np.minimum(first, num_frames - 1):
        labels[frame : frame + width_frames] = 1.0
    return labels


def onsets_to_mel_mask(
    times, duration: float, timeline=None, event_seconds: float | None = None
) -> np.ndarray:
    """The temporal controller's timestamp mask (+1 on / -1 off per mel column) for onset times.

    A thin wrapper over :func:`foleycrafter.temporal.mask_from_onset_times`, so training labels use
    exactly the seconds-to-column arithmetic of inference.

    Args:
        times: onset times in seconds, each in ``[0, duration)``.
        duration: clip length in seconds.
        timeline: the :class:`~foleycrafter.timeline.Timeline` (default: Auffusion's).
        event_seconds: how long each event is marked on (default: the inference default).

    Returns:
        float32 array (timeline.window_columns,).
    """
    # Imported here: foleycrafter.temporal pulls in diffusers, which plain onset detection and
    # frame labelling do not need.
    from .temporal import DEFAULT_EVENT_SECONDS, mask_from_onset_times
    from .timeline import Timeline

    return mask_from_onset_times(
        np.asarray(times, dtype=np.float64).tolist(),
        duration,
        timeline if timeline is not None else Timeline(),
        DEFAULT_EVENT_SECONDS if event_seconds is None else event_seconds,
    )


# -- internals -----------------------------------------------------------------------------------


def _as_mono(waveform) -> np.ndarray:
    """float64 (samples,) from a numpy array or torch tensor, channels-first if 2-D."""
    if hasattr(waveform, "detach"):  # a torch tensor; torch itself is not needed to read it
        waveform = waveform.detach().cpu().float().numpy()
    array = np.asarray(waveform, dtype=np.float64)
    if array.ndim == 2:
        if array.shape[0] > array.shape[1]:
            raise ValueError(
                f"waveform of shape {array.shape} looks like (samples, channels); pass (channels, samples) "
                f"(e.g. transpose what soundfile returns) or a 1-D array."
            )
        array = array.mean(axis=0)
    if array.ndim != 1:
        raise ValueError(f"waveform must have shape (samples,) or (channels, samples), got {array.shape}.")
    if array.size == 0:
        raise ValueError("waveform is empty.")
    if not np.all(np.isfinite(array)):
        raise ValueError("waveform contains NaN or infinite samples.")
    return array


def _as_times(times, name: str) -> np.ndarray:
    array = np.asarray(times, dtype=np.float64).reshape(-1) if np.ndim(times) else None
    if array is None:
        raise ValueError(f"{name} must be a 1-D sequence of times in seconds, got {times!r}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite times in seconds, got {array.tolist()}.")
    return array


def _ms_to_samples(milliseconds: float, sample_rate: int, name: str) -> int:
    if not (np.isfinite(milliseconds) and milliseconds > 0):
        raise ValueError(f"{name} must be a positive number of milliseconds, got {milliseconds}.")
    return max(1, int(round(milliseconds * sample_rate / 1000.0)))


def _stft_magnitude(signal: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """|STFT| (frames, frame_length // 2 + 1), frames centred on multiples of ``hop``."""
    half = frame_length // 2
    # Reflected at the start, so that a sound already playing at t = 0 does not look like an onset.
    # Frames that reach past the end are discarded by the caller; zeros just give them a shape. Very
    # short clips cannot be reflected and get zeros.
    head = signal[half:0:-1] if signal.size > half else np.zeros(half)
    padded = np.concatenate([head, signal, np.zeros(half)])
    if padded.size < frame_length:
        padded = np.pad(padded, (0, frame_length - padded.size))
    num_frames = 1 + signal.size // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop][:num_frames]
    window = np.hanning(frame_length + 1)[:-1]  # periodic Hann
    # Scale so that a full-scale sinusoid peaks at about 1 in its bin.
    return np.abs(np.fft.rfft(frames * window, axis=1)) / (window.sum() / 2.0)


def _group_bands(
    magnitudes: np.ndarray, sample_rate: int, frame_length: int, n_bands: int | None
) -> np.ndarray:
    """Band magnitudes (frames, bands): sqrt of the energy in mel-spaced groups of bins (DC dropped)."""
    if n_bands is None:
        return magnitudes[:, 1:]
    num_bins = magnitudes.shape[1]
    bin_hz = sample_rate / frame_length
    top_mel = 2595.0 * np.log10(1.0 + (sample_rate / 2.0) / 700.0)
    edges_hz = 700.0 * (10.0 ** (np.linspace(0.0, top_mel, n_bands + 1) / 2595.0) - 1.0)
    edges = np.unique(np.clip(np.round(edges_hz / bin_hz).astype(np.int64), 1, num_bins))
    if edges[-1] < num_bins:
        edges = np.append(edges, num_bins)
    power = magnitudes**2
    return np.sqrt(np.add.reduceat(power, edges[:-1], axis=1))


def _forward_max(values: np.ndarray, count: int) -> np.ndarray:
    """``out[n] = max(values[n : n + count + 1])``."""
    out = values.copy()
    for ahead in range(1, min(count, values.size - 1) + 1):
        np.maximum(out[:-ahead], values[ahead:], out=out[:-ahead])
    return out


def _envelope_db(signal: np.ndarray, length: int) -> np.ndarray:
    """Trailing moving average of |x| over ``length`` samples, in dB (floored at -120 dB)."""
    cumulative = np.concatenate([[0.0], np.cumsum(np.abs(signal))])
    index = np.arange(1, signal.size + 1)
    start = np.maximum(index - length, 0)
    average = (cumulative[index] - cumulative[start]) / length
    return 20.0 * np.log10(np.maximum(average, 1e-6))


def _rise_start(
    envelope_db: np.ndarray,
    peak: int,
    frame_length: int,
    attack: int,
    rise_fraction: float,
    min_rise_db: float,
) -> int:
    """Sample where the energy rise behind a flux peak (at sample ``peak``) starts.

    The flux of an abrupt onset peaks about a quarter frame before it (measured on synthetic
    impacts: 8 +- 1.5 ms for a 32 ms frame), and never more than half a frame before; a slow
    attack moves the peak later. So the rise start is looked for in
    ``[peak - frame/4, peak + frame/2]``; when none is found there (the envelope hardly rises,
    e.g. an event under a louder one, or it rises later, e.g. ripple of a low tone), the onset is
    ``peak + frame/4``.
    """
    last = envelope_db.size - 1
    expected = min(peak + frame_length // 4, last)
    peak = min(peak, last)
    earliest, latest = max(peak - frame_length // 4, 0), min(peak + frame_length // 2, last)
    # The maximum is searched from the flux peak on (the sound is louder after its onset); the
    # minimum from half a frame earlier, where the frame can first see the onset.
    high = min(latest + attack, last)
    top = peak + int(np.argmax(envelope_db[peak : high + 1]))
    low = max(peak - frame_length // 2, 0)
    bottom_level = float(envelope_db[low : top + 1].min())
    rise = float(envelope_db[top]) - bottom_level
    if rise < min_rise_db:
        return expected
    below = np.flatnonzero(envelope_db[low : top + 1] < bottom_level + rise_fraction * rise)
    start = low + int(below[-1]) + 1 if below.size else low
    return start if earliest <= start <= latest else expected


def _enforce_min_interval(times: np.ndarray, strengths: np.ndarray, min_interval: float) -> np.ndarray:
    """Indices kept so that no two times are closer than ``min_interval`` s (stronger ones win)."""
    kept: list[int] = []
    for index in np.argsort(-strengths, kind="stable"):
        if all(abs(times[index] - times[other]) >= min_interval - _EPSILON for other in kept):
            kept.append(int(index))
    return np.array(sorted(kept), dtype=np.int64)
