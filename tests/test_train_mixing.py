"""Mixup and CutMix (train/augment.py Mixing): what each image keeps of itself is what its target keeps."""

from __future__ import annotations

import numpy as np
import pytest

from edgefer.runtime.preprocess import PreprocessSpec
from edgefer.train.augment import Mixing


def _batch(n: int = 8, k: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each image a constant of its own (its index + 1), each target one-hot of its own class."""
    x = np.broadcast_to(np.arange(1, n + 1, dtype=np.float32)[:, None, None, None], (n, 48, 48, 1)).copy()
    t = np.eye(k, dtype=np.float32)[np.arange(n) % k]
    return x, t


def test_off_is_the_identity() -> None:
    x, t = _batch()
    out = Mixing()(x, t, np.random.default_rng(0))
    assert out[0] is x and out[1] is t and out[2] is None


def test_mixup_blends_images_and_targets_alike() -> None:
    x, t = _batch(k=8)  # 8 images, 8 classes: image i is class i
    w = np.arange(8, dtype=np.float32)
    mx, mt, mw = Mixing(mixup=0.4)(x, t, np.random.default_rng(3), weights=w)
    assert mw is not None
    assert np.allclose(mt.sum(axis=1), 1)
    for i in range(8):
        others = [c for c in np.flatnonzero(mt[i] > 1e-7) if c != i]
        partner = int(others[0]) if others else i  # paired with itself: unchanged
        lam = float(mt[i, i]) if others else 1.0
        assert np.allclose(mx[i], lam * (i + 1) + (1 - lam) * (partner + 1), atol=1e-5)
        assert mw[i] == pytest.approx(lam * i + (1 - lam) * partner, abs=1e-5)
    assert not np.allclose(mx, x)


def test_cutmix_keeps_each_pixel_from_one_image_and_targets_by_area() -> None:
    x, t = _batch(k=8)
    for seed in range(20):
        mx, mt, _ = Mixing(cutmix=1.0)(x, t, np.random.default_rng(seed))
        for i in range(8):
            own = float((mx[i] == i + 1).mean())
            # every pixel is the image's own or one partner's; the target keeps the same share
            assert np.isin(np.unique(mx[i]), np.arange(1, 9)).all() and len(np.unique(mx[i])) <= 2
            if own < 1:
                assert mt[i, i] == pytest.approx(own, abs=1e-6)
        assert np.allclose(mt.sum(axis=1), 1)


def test_cutmix_box_lies_in_the_spatial_axes_of_the_layout() -> None:
    x = np.broadcast_to(np.arange(1, 5, dtype=np.float32)[:, None, None, None], (4, 1, 48, 48)).copy()  # NCHW
    t = np.eye(4, dtype=np.float32)
    for seed in range(10):
        mx, mt, _ = Mixing(cutmix=1.0)(x, t, np.random.default_rng(seed), spatial=(2, 3))
        for i in range(4):
            if mt[i, i] < 1:
                assert mt[i, i] == pytest.approx(float((mx[i, 0] == i + 1).mean()), abs=1e-6)


def test_both_on_draws_each_kind() -> None:
    x, t = _batch()
    kinds = set()
    for seed in range(40):
        mx, _, _ = Mixing(mixup=0.4, cutmix=1.0)(x, t, np.random.default_rng(seed))
        whole = all(len(np.unique(mx[i])) <= 2 and np.isin(np.unique(mx[i]), np.arange(1, 9)).all()
                    for i in range(len(x)))
        kinds.add("cutmix" if whole else "mixup")
    assert kinds == {"cutmix", "mixup"}


def test_face_batches_mix_the_same_way_every_time() -> None:
    pytest.importorskip("keras")
    from edgefer.train.sequence import FaceBatches

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (20, 48, 48), dtype=np.uint8)
    y = np.arange(20) % 7

    def batches(mix: Mixing | None) -> FaceBatches:
        return FaceBatches(faces, y, PreprocessSpec(), 8, num_classes=7, shuffle=True, seed=1, mix=mix)

    a, b, plain = batches(Mixing(cutmix=1.0)), batches(Mixing(cutmix=1.0)), batches(None)
    for i in range(len(a)):
        (xa, ta), (xb, tb), (xp, _) = a[i], b[i], plain[i]
        assert np.array_equal(xa, xb) and np.array_equal(ta, tb)
        assert xa.shape == xp.shape and np.allclose(ta.sum(axis=1), 1)
    assert any(not np.array_equal(a[i][1], plain[i][1]) for i in range(len(a)))


def test_a_negative_alpha_is_refused() -> None:
    from edgefer.runtime.errors import UsageError
    from edgefer.train.config import TrainConfig

    with pytest.raises(UsageError, match="--cutmix -1"):
        TrainConfig(cutmix=-1.0).validate()
