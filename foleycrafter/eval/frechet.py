"""Fréchet distance between two sets of embeddings (as in FID / FAD).

Each set is summarized by a Gaussian: the mean ``mu`` and covariance ``sigma`` of its embeddings.
The Fréchet (2-Wasserstein) distance between the two Gaussians is::

    d^2 = ||mu_1 - mu_2||^2 + tr(sigma_1 + sigma_2 - 2 (sigma_1 sigma_2)^(1/2))

reported as ``d^2`` (the convention of FID and FAD). Its unit is the squared unit of the embedding.

Numerical care: the matrix square root is taken with ``scipy.linalg.sqrtm``. When the product is
singular -- fewer samples than dimensions, or collinear embeddings -- ``sqrtm`` warns and may be
inaccurate or non-finite. The usual FID fix adds a small multiple of the identity to both
covariances, which biases the result by about ``2 * dim * eps``; instead the trace is then computed
from the symmetric form ``sigma1^(1/2) sigma2 sigma1^(1/2)`` by eigendecomposition, which is exact
for positive semi-definite matrices (eigenvalues at round-off level are set to 0 first). A small imaginary part from round-off is dropped; a large one is an error.
The result is clamped at 0 (round-off can make identical sets come out at -1e-12).

With :class:`~foleycrafter.eval.classifier.AudioClassifier` embeddings this is the benchmark's
Fréchet distance between generated and ground-truth audio (:func:`frechet_audio_distance`).
Sample covariances need many more clips than dimensions to be stable (64-d embeddings: hundreds of
clips); with few clips the value is biased upwards and only comparable at equal clip counts.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

_IMAGINARY_TOLERANCE = 1e-3  # relative to the largest |eigenvalue|-scale entry of the square root


def embedding_statistics(embeddings) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, ``N - 1``; zeros for one sample) of
    embeddings ``(N, D)``, as float64."""
    array = np.asarray(embeddings, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"embeddings must be a non-empty (N, D) array, got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError("embeddings contain NaN or infinite values.")
    mean = array.mean(axis=0)
    if array.shape[0] == 1:
        return mean, np.zeros((array.shape[1], array.shape[1]))
    return mean, np.atleast_2d(np.cov(array, rowvar=False))


def frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between Gaussians ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Args:
        mu1, mu2: means ``(D,)``.
        sigma1, sigma2: covariances ``(D, D)`` (symmetric positive semi-definite).

    Returns:
        ``d^2 >= 0`` in squared embedding units.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"means must be 1-D of the same length, got shapes {mu1.shape} and {mu2.shape}.")
    dim = mu1.shape[0]
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        if sigma.shape != (dim, dim):
            raise ValueError(f"{name} must have shape ({dim}, {dim}), got {sigma.shape}.")
    difference = mu1 - mu2
    trace_root = _trace_sqrt_product(sigma1, sigma2)
    distance = difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root
    return float(max(distance, 0.0))


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((sigma1 sigma2)^(1/2))`` by ``scipy.linalg.sqrtm``; if the product is singular (``sqrtm``
    warns, or returns non-finite values), by the symmetric form ``tr((A sigma2 A)^(1/2))``,
    ``A = sigma1^(1/2)``, whose eigenvalues are real and non-negative (the same trace: ``A sigma2 A``
    is similar to ``sigma1 sigma2``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            root = linalg.sqrtm(sigma1 @ sigma2)
        except (linalg.LinAlgWarning, linalg.LinAlgError, ValueError):
            root = None
    if root is not None and np.all(np.isfinite(root)):
        if np.iscomplexobj(root):
            # Round-off gives a tiny imaginary part; a large one means the inputs are not covariances.
            scale = max(1.0, float(np.max(np.abs(root.real))))
            if not np.allclose(np.diagonal(root).imag, 0, atol=_IMAGINARY_TOLERANCE * scale):
                raise ValueError(
                    f"the square root of the covariance product has a large imaginary part "
                    f"({np.max(np.abs(root.imag)):.3g}); the covariances are not positive semi-definite."
                )
            root = root.real
        return float(np.trace(root))
    values, vectors = linalg.eigh((sigma1 + sigma1.T) / 2)
    half = (vectors * np.sqrt(_drop_round_off(values))) @ vectors.T
    inner = linalg.eigvalsh(half @ ((sigma2 + sigma2.T) / 2) @ half)
    return float(np.sum(np.sqrt(_drop_round_off(inner))))


def _drop_round_off(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with round-off (negative, or below ``dim * machine epsilon`` of the
    largest) set to 0: their square roots (1e-5 for 1e-10) would otherwise add up to a visible error."""
    floor = float(np.max(np.abs(eigenvalues), initial=0.0)) * eigenvalues.size * np.finfo(float).eps
    return np.where(eigenvalues > floor, eigenvalues, 0.0)


def frechet_distance(embeddings_a, embeddings_b) -> float:
    """Squared Fréchet distance between two sets of embeddings ``(N_a, D)`` and ``(N_b, D)``."""
    mu1, sigma1 = embedding_statistics(embeddings_a)
    mu2, sigma2 = embedding_statistics(embeddings_b)
    if mu1.shape != mu2.shape:
        raise ValueError(f"the two sets have different embedding sizes: {mu1.shape[0]} and {mu2.shape[0]}.")
    return frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2)


def frechet_audio_distance(classifier, generated_waveforms, reference_waveforms) -> float:
    """Fréchet distance between generated and reference audio in ``classifier``'s embedding space.

    Args:
        classifier: an :class:`~foleycrafter.eval.classifier.AudioClassifier` (or anything with
            ``embed(waveforms) -> (N, D)``).
        generated_waveforms, reference_waveforms: lists of 1-D float32 waveforms at the classifier's
            sample rate (16 kHz), any lengths.

    Returns:
        ``d^2 >= 0`` (squared embedding units).
    """
    return frechet_distance(classifier.embed(generated_waveforms), classifier.embed(reference_waveforms))
