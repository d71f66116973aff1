"""Tests of equihand.methods.augment: geometry against image content, sampling, photometric ops."""

from __future__ import annotations

import math

import kornia
import pytest
import torch

from equihand.config import load_schema
from equihand.methods import augment
from equihand.methods import geometry as geo
from equihand.methods.augment import AugmentConfig

SIZE = 48
NO_COLOUR = dict(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
NO_GEOMETRY = dict(rotation_deg=0.0, scale=(1.0, 1.0), translate=0.0)


def blobs(points: torch.Tensor, size: int = SIZE, sigma: float = 1.0) -> torch.Tensor:
    """(B, 2) dot centres (u, v) -> (B, 3, size, size) images with a Gaussian dot each."""
    coord = torch.arange(size, dtype=torch.float32)
    du = coord[None, None, :] - points[:, 0, None, None]
    dv = coord[None, :, None] - points[:, 1, None, None]
    dot = torch.exp(-(du**2 + dv**2) / (2 * sigma**2))
    return dot[:, None].expand(-1, 3, -1, -1).contiguous()


def centroid(images: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted centre (u, v) of channel 0 of each image: (B, 2)."""
    img = images[:, 0].double()
    coord = torch.arange(img.shape[-1], dtype=img.dtype)
    mass = img.sum((-2, -1))
    u = (img * coord[None, None, :]).sum((-2, -1)) / mass
    v = (img * coord[None, :, None]).sum((-2, -1)) / mass
    return torch.stack([u, v], -1).float()


def geometry(deg, scale, shift, size=SIZE, out_size=None):
    return geo.make_geometry(
        torch.tensor(deg, dtype=torch.float32).deg2rad(),
        torch.tensor(scale, dtype=torch.float32),
        torch.tensor(shift, dtype=torch.float32),
        size,
        out_size,
    )


def reference_matrix(angle, scale, shift, size, out_size=None):
    """A = T(c' + t) R S(s k) T(-c), built from explicit 3x3 products in float64."""
    h, w = (size, size) if isinstance(size, int) else size
    h2, w2 = (h, w) if out_size is None else out_size
    mats = []
    for a, s, (tu, tv) in zip(angle.double(), scale.double(), shift.double(), strict=True):
        t_in = torch.tensor([[1, 0, -(w - 1) / 2], [0, 1, -(h - 1) / 2], [0, 0, 1]]).double()
        zoom = torch.diag(torch.stack([s * w2 / w, s * h2 / h, torch.ones((), dtype=s.dtype)]))
        c, n = torch.cos(a).item(), torch.sin(a).item()
        rot = torch.tensor([[c, -n, 0], [n, c, 0], [0, 0, 1]]).double()
        t_out = torch.tensor([[1, 0, (w2 - 1) / 2 + tu], [0, 1, (h2 - 1) / 2 + tv], [0, 0, 1]])
        mats.append(t_out.double() @ rot @ zoom @ t_in)
    return torch.stack(mats)


# --- geometry against image content ---------------------------------------------------------


@pytest.mark.parametrize("deg", [30.0, -30.0])
def test_dot_lands_where_transform_points_says(deg):
    point = torch.tensor([[20.0, 13.0]])
    cases = [(deg, 1.0, (0.0, 0.0)), (deg, 1.2, (2.5, -1.5)), (deg, 0.8, (-3.0, 2.0))]
    geom = geometry(*map(list, zip(*cases, strict=True)))
    points = point.expand(len(cases), 2)
    out = geo.warp(blobs(points), geom.matrix)
    expected = geo.transform_points(geom.matrix, points[:, None])[:, 0]
    torch.testing.assert_close(centroid(out), expected, atol=0.2, rtol=0)
    # the dot really moved (a no-op warp would not pass)
    assert (expected - points).norm(dim=-1).min() > 3


def test_positive_angle_turns_clockwise_on_screen():
    """+90 degrees: content right of the centre moves below it (v points down)."""
    c = (SIZE - 1) / 2
    right = torch.tensor([[c + 10.0, c]])
    out = geo.warp(blobs(right), geometry([90.0], [1.0], [[0.0, 0.0]]).matrix)
    torch.testing.assert_close(centroid(out), torch.tensor([[c, c + 10.0]]), atol=0.05, rtol=0)
    # and -90 degrees takes it above the centre
    out = geo.warp(blobs(right), geometry([-90.0], [1.0], [[0.0, 0.0]]).matrix)
    torch.testing.assert_close(centroid(out), torch.tensor([[c, c - 10.0]]), atol=0.05, rtol=0)


def test_shift_moves_content_right_and_down():
    point = torch.tensor([[20.0, 13.0]])
    out = geo.warp(blobs(point), geometry([0.0], [1.0], [[3.0, 5.0]]).matrix)
    torch.testing.assert_close(centroid(out), torch.tensor([[23.0, 18.0]]), atol=0.05, rtol=0)


def test_identity_geometry_returns_image_unchanged():
    images = torch.rand(3, 3, SIZE, SIZE + 8, generator=torch.Generator().manual_seed(0))
    geom = geo.make_geometry(torch.zeros(3), torch.ones(3), torch.zeros(3, 2), (SIZE, SIZE + 8))
    torch.testing.assert_close(geom.matrix, torch.eye(3).expand(3, 3, 3))
    out = geo.warp(images, geom.matrix)
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_transform_points_agrees_with_warp_for_random_matrices():
    gen = torch.Generator().manual_seed(1)
    n = 64
    cfg = AugmentConfig(rotation_deg=180.0, scale=(0.8, 1.25), translate=0.08, **NO_COLOUR)
    geom = geo.sample_geometry(n, SIZE, cfg, generator=gen)
    c = (SIZE - 1) / 2
    points = c + (torch.rand(n, 2, generator=gen) * 2 - 1) * 8  # stays well inside after warping
    out = geo.warp(blobs(points), geom.matrix)
    expected = geo.transform_points(geom.matrix, points[:, None])[:, 0]
    torch.testing.assert_close(centroid(out), expected, atol=0.2, rtol=0)


def test_resize_keeps_pixel_centres_consistent():
    """Output size 24 from 48: a dot lands at the matching pixel-centre position."""
    point = torch.tensor([[20.0, 13.0]])
    geom = geometry([30.0], [1.0], [[1.0, -2.0]], SIZE, (SIZE // 2, SIZE // 2))
    out = geo.warp(blobs(point, sigma=2.0), geom.matrix, out_size=SIZE // 2)
    assert out.shape == (1, 3, SIZE // 2, SIZE // 2)
    expected = geo.transform_points(geom.matrix, point[:, None])[:, 0]
    torch.testing.assert_close(centroid(out), expected, atol=0.2, rtol=0)
    torch.testing.assert_close(
        geom.matrix.double(), reference_matrix(geom.angle, geom.scale, geom.shift, SIZE, (24, 24))
    )


def test_transform_points_shapes_and_values():
    matrix = torch.tensor([[[0.0, -2.0, 5.0], [2.0, 0.0, -1.0], [0.0, 0.0, 1.0]]]).expand(2, 3, 3)
    uv = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]]]).expand(2, 3, 2)
    out = geo.transform_points(matrix, uv)
    assert out.shape == (2, 3, 2)
    torch.testing.assert_close(out[0], torch.tensor([[5.0, 1.0], [3.0, -1.0], [-3.0, 5.0]]))


# --- sampling --------------------------------------------------------------------------------


def test_sample_geometry_ranges_formula_and_per_sample_draws():
    cfg = AugmentConfig(rotation_deg=40.0, scale=(0.7, 1.3), translate=0.1)
    n, size = 512, (40, 60)
    geom = geo.sample_geometry(n, size, cfg, generator=torch.Generator().manual_seed(3))
    assert geom.angle.shape == (n,) and geom.scale.shape == (n,)
    assert geom.shift.shape == (n, 2) and geom.matrix.shape == (n, 3, 3)
    assert all(x.dtype == torch.float32 for x in (geom.angle, geom.scale, geom.shift, geom.matrix))
    assert geom.angle.abs().max() <= math.radians(40.0) + 1e-6
    assert geom.angle.abs().max() > math.radians(35.0)  # the range is used, not a tiny part
    assert geom.scale.min() >= 0.7 - 1e-6 and geom.scale.max() <= 1.3 + 1e-6
    assert geom.scale.min() < 0.75 and geom.scale.max() > 1.25
    # log-uniform: the median zoom is the geometric mean of the range
    assert abs(geom.scale.median().item() - math.sqrt(0.7 * 1.3)) < 0.04
    assert geom.shift[:, 0].abs().max() <= 0.1 * 60 + 1e-5
    assert geom.shift[:, 1].abs().max() <= 0.1 * 40 + 1e-5
    assert geom.shift[:, 0].abs().max() > 0.1 * 40 + 0.5  # u uses the width, v the height
    # matrices are the documented composition
    ref = reference_matrix(geom.angle, geom.scale, geom.shift, size)
    torch.testing.assert_close(geom.matrix.double(), ref, atol=1e-4, rtol=1e-6)
    # one draw per sample, not one per batch
    for x in (geom.angle, geom.scale, geom.shift[:, 0], geom.shift[:, 1]):
        assert x.unique().numel() == n


def test_sample_geometry_is_reproducible():
    cfg = AugmentConfig()
    a = geo.sample_geometry(8, SIZE, cfg, generator=torch.Generator().manual_seed(7))
    b = geo.sample_geometry(8, SIZE, cfg, generator=torch.Generator().manual_seed(7))
    c = geo.sample_geometry(8, SIZE, cfg, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a.matrix, b.matrix, atol=0, rtol=0)
    assert not torch.allclose(a.matrix, c.matrix)
    torch.manual_seed(5)
    d = geo.sample_geometry(8, SIZE, cfg)
    torch.manual_seed(5)
    e = geo.sample_geometry(8, SIZE, cfg)
    torch.testing.assert_close(d.angle, e.angle, atol=0, rtol=0)


def test_zero_ranges_give_identity():
    cfg = AugmentConfig(**NO_GEOMETRY, **NO_COLOUR)
    images = torch.rand(4, 3, SIZE, SIZE)
    views, geom = augment.augment_view(images, cfg)
    torch.testing.assert_close(geom.matrix, torch.eye(3).expand(4, 3, 3))
    torch.testing.assert_close(views, images, atol=1e-5, rtol=0)


def test_config_matches_schema_defaults():
    schema = load_schema()["properties"]["augment"]["properties"]
    defaults = {k: v["default"] for k, v in schema.items()}
    cfg = AugmentConfig.from_config({})
    assert {k: getattr(cfg, k) for k in defaults} == {
        k: tuple(v) if isinstance(v, list) else v for k, v in defaults.items()
    }
    assert AugmentConfig.from_config(defaults) == cfg
    assert AugmentConfig.from_config({"rotation_deg": 10}).rotation_deg == 10
    with pytest.raises(ValueError, match="unknown"):
        AugmentConfig.from_config({"rotate": 10})
    with pytest.raises(ValueError, match="scale"):
        AugmentConfig(scale=(1.2, 0.9))


# --- photometric -----------------------------------------------------------------------------


def colourful(n: int = 16, size: int = 24, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (0.2 + 0.6 * torch.rand(n, 3, size, size, generator=gen)).contiguous(
        memory_format=torch.channels_last
    )


def test_photometric_all_probabilities_zero_is_identity():
    images = colourful()
    cfg = AugmentConfig(**NO_COLOUR)
    out = augment.photometric(images, cfg, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, images)


@pytest.mark.parametrize(
    "kw",
    [
        dict(jitter_p=1.0),
        dict(jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.2),
        dict(jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=0.8, hue=0.0),
    ],
)
def test_photometric_changes_every_sample_and_stays_in_range(kw):
    images = colourful()
    cfg = AugmentConfig(**{**NO_COLOUR, **kw})
    out = augment.photometric(images, cfg, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 1
    per_sample = (out - images).abs().amax(dim=(1, 2, 3))
    assert (per_sample > 1e-3).all()
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_blur_p_one_smooths_every_sample():
    images = colourful()
    out = augment.photometric(images, AugmentConfig(**{**NO_COLOUR, "blur_p": 1.0}))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1

    def roughness(x):
        return (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3))

    assert (roughness(out) <= roughness(images) + 1e-6).all()
    assert (roughness(out) < 0.7 * roughness(images)).float().mean() > 0.5  # sigma ~ U(0.1, 2)


def test_photometric_is_per_sample_and_reproducible():
    images = colourful(64)
    cfg = AugmentConfig(jitter_p=0.5)
    out = augment.photometric(images, cfg, generator=torch.Generator().manual_seed(2))
    again = augment.photometric(images, cfg, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out, again)
    changed = (out - images).abs().amax(dim=(1, 2, 3)) > 0
    assert 10 < changed.sum() < 54  # about half the samples, untouched ones bit for bit
    # brightness factors differ between samples: mean ratio is not one number for the batch
    ratio = out[changed].mean((1, 2, 3)) / images[changed].mean((1, 2, 3))
    assert ratio.std() > 0.05


def kornia_jitter(images, cfg, generator):
    """The colour jitter written directly with kornia's functionals on the whole batch (how
    augment.photometric did it before it worked in place on the firing samples only)."""
    b = images.shape[0]
    fire = torch.rand(b, generator=generator) < cfg.jitter_p
    x = images.clamp(0, 1)
    steps = (
        (cfg.brightness, kornia.enhance.adjust_brightness_accumulative),
        (cfg.contrast, kornia.enhance.adjust_contrast_with_mean_subtraction),
        (cfg.saturation, kornia.enhance.adjust_saturation_with_gray_subtraction),
    )
    for width, fn in steps:
        if width > 0:
            x = fn(x, max(0.0, 1 - width) + 2 * width * torch.rand(b, generator=generator))
    if cfg.hue > 0:
        turn = -cfg.hue + 2 * cfg.hue * torch.rand(b, generator=generator)
        r, g, bl = x.unbind(-3)
        mx, mn = x.amax(-3), x.amin(-3)
        chroma = mx - mn
        safe = chroma.clamp_min(torch.finfo(x.dtype).tiny)
        hue = torch.where(
            mx == r,
            torch.remainder((g - bl) / safe, 6),
            torch.where(mx == g, (bl - r) / safe + 2, (r - g) / safe + 4),
        )
        hue = hue + 6 * turn[:, None, None]
        n = torch.tensor([5.0, 3.0, 1.0])[:, None, None]
        k = torch.remainder(n + hue[:, None], 6)
        x = mx[:, None] - chroma[:, None] * torch.minimum(k, 4 - k).clamp(0, 1)
    return torch.where(fire[:, None, None, None], x, images).clamp(0, 1)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_colour_jitter_is_kornias_bit_for_bit(threads):
    """In place, on the firing rows only, and still kornia's numbers exactly: at sizes where
    ATen sums a row's contrast mean in parallel (>= 32768 pixels), for a lone firing row,
    every layout and every subset of the jitter."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        configs = [
            AugmentConfig(**{**NO_COLOUR, "jitter_p": p, **kw})
            for p in (0.8, 1.0, 0.05)
            for kw in (
                {},
                dict(hue=0.5),
                dict(contrast=0.0, saturation=0.0),
                dict(brightness=0.0, hue=0.0),
            )
        ]
        for n, size in [(16, 24), (3, 192), (2, 192), (1, 192), (5, 33)]:
            images = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(n))
            images[0, :, :3, :3] = 0.5  # grey: no hue
            images[-1, 0, -3:] = images[-1, 1, -3:]  # channel ties
            for channels_last in (False, True):
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                for i, cfg in enumerate(configs):
                    ours = augment.photometric(images, cfg, torch.Generator().manual_seed(i))
                    ref = kornia_jitter(images, cfg, torch.Generator().manual_seed(i))
                    assert torch.equal(ours, ref), (n, size, channels_last, cfg)
                    layout = torch.channels_last if channels_last else torch.contiguous_format
                    assert ours.is_contiguous(memory_format=layout)
        # a lone firing row of a 224 px batch: its mean must be summed as the batch sums it
        images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        cfg = AugmentConfig(**{**NO_COLOUR, "jitter_p": 0.5})
        lone = 0
        for seed in range(16):
            fired = torch.rand(2, generator=torch.Generator().manual_seed(seed)) < 0.5
            lone += int(fired.sum() == 1)
            ours = augment.photometric(images, cfg, torch.Generator().manual_seed(seed))
            ref = kornia_jitter(images, cfg, torch.Generator().manual_seed(seed))
            assert torch.equal(ours, ref)
        assert lone >= 4
    finally:
        torch.set_num_threads(before)


def test_photometric_leaves_its_input_alone():
    images = colourful(8, 40)
    kept = images.clone()
    augment.photometric(images, AugmentConfig(jitter_p=1.0, blur_p=1.0, grayscale_p=0.5))
    augment.shift_hue(images, torch.full((8,), 0.2))
    assert torch.equal(images, kept)


def test_shift_hue_matches_hsv_round_trip():
    images = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    images[0, :, :2] = 0.5  # grey pixels (no hue)
    images[1, 0] = images[1, 1]  # channel ties
    images[2, 2] = images[2, 1]
    turn = torch.tensor([0.1, -0.3, 0.5, -0.5, 0.0, 0.25])
    ref = kornia.enhance.adjust_hue(images, turn * 2 * math.pi)
    out = augment.shift_hue(images, turn)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[4], images[4], atol=1e-6, rtol=0)
    torch.testing.assert_close(out.amax(1), images.amax(1))  # value and chroma are kept
    torch.testing.assert_close(out.amin(1), images.amin(1))


def test_grayscale_p_one_gives_equal_channels():
    images = colourful()
    out = augment.photometric(images, AugmentConfig(**{**NO_COLOUR, "grayscale_p": 1.0}))
    torch.testing.assert_close(out[:, 0], out[:, 1])
    torch.testing.assert_close(out[:, 1], out[:, 2])
    assert not torch.allclose(out, images, atol=1e-2)


# --- views and conversion --------------------------------------------------------------------


def test_two_views_differ_and_keep_shape():
    images = colourful(8, SIZE)
    (v1, g1), (v2, g2) = augment.two_views(
        images, AugmentConfig(), torch.Generator().manual_seed(0)
    )
    assert v1.shape == v2.shape == images.shape
    assert v1.min() >= 0 and v1.max() <= 1
    assert (v1 - v2).abs().amax(dim=(1, 2, 3)).min() > 1e-2
    assert not torch.allclose(g1.angle, g2.angle) and not torch.allclose(g1.shift, g2.shift)


def test_augment_view_out_size_and_no_grad():
    images = colourful(4, SIZE).requires_grad_()
    views, geom = augment.augment_view(images, AugmentConfig(), out_size=SIZE // 2)
    assert views.shape == (4, 3, SIZE // 2, SIZE // 2)
    assert not views.requires_grad
    # geometry reads: input pixel -> output pixel of the smaller image
    centre_in = torch.full((4, 1, 2), (SIZE - 1) / 2)
    centre_out = geo.transform_points(geom.matrix, centre_in)[:, 0]
    torch.testing.assert_close(centre_out, (SIZE // 2 - 1) / 2 + geom.shift)


def test_to_float():
    raw = torch.randint(0, 256, (2, 5, 7, 3), dtype=torch.uint8)
    raw[0, 0, 0] = torch.tensor([0, 128, 255], dtype=torch.uint8)
    out = augment.to_float(raw)
    assert out.shape == (2, 3, 5, 7) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, 128 / 255, 1.0]))
    torch.testing.assert_close(out.permute(0, 2, 3, 1), raw.float() / 255)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    images = colourful(8, SIZE)
    cfg = AugmentConfig()
    cpu, g_cpu = augment.augment_view(images, cfg, torch.Generator().manual_seed(4))
    gpu, g_gpu = augment.augment_view(images.cuda(), cfg, torch.Generator().manual_seed(4))
    assert gpu.device.type == "cuda" and g_gpu.matrix.device.type == "cuda"
    torch.testing.assert_close(g_gpu.matrix.cpu(), g_cpu.matrix)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- background swap


def _scene(b=4, size=16, seed=0):
    """Images with a square 'hand' of colour 0.9 at a per-image spot on random backgrounds."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 3, size, size, generator=g) * 0.5
    fg = torch.zeros(b, size, size, dtype=torch.bool)
    for i in range(b):
        fg[i, 2 + i : 7 + i, 3 : 8 + i] = True
    images[fg[:, None].expand_as(images)] = 0.9
    return images, fg


def test_swap_backgrounds_keeps_the_hand_and_takes_a_partners_background():
    images, fg = _scene()
    out = augment.swap_backgrounds(images, fg, 1.0, torch.Generator().manual_seed(3))
    keep = fg[:, None].expand_as(images)
    assert torch.equal(out[keep], images[keep])  # every hand pixel, bit for bit
    # the background now comes from one other image of the batch, the same k for all: where the
    # partner's own background is far from its hand, its pixels are copied exactly
    b = len(images)
    matches = []
    for k in range(1, b):
        partner = torch.roll(images, -k, 0)
        partner_hand = torch.nn.functional.max_pool2d(
            torch.roll(fg, -k, 0)[:, None].float(), 3, stride=1, padding=1
        )[:, 0].bool()
        clean = (~fg & ~partner_hand)[:, None].expand_as(images)
        matches.append(torch.equal(out[clean], partner[clean]))
    assert matches.count(True) == 1
    assert not torch.equal(out[~keep], images[~keep])
    assert out.min() >= 0 and out.max() <= 1


def test_swap_backgrounds_fills_the_partners_hand_from_its_surroundings():
    images, fg = _scene(b=2)
    out = augment.swap_backgrounds(images, fg, 1.0, torch.Generator().manual_seed(0))
    # image 0's partner is image 1 (b = 2 leaves k = 1): inside image 1's hand, but outside
    # image 0's, no pixel keeps the hand colour 0.9 (the fill is a blur of a background <= 0.5)
    hole = fg[1] & ~fg[0]
    assert hole.any()
    assert out[0][:, hole].max() <= 0.5 + 1e-6


def test_swap_backgrounds_passes_samples_that_do_not_fire_bit_for_bit():
    images, fg = _scene(b=16)
    g = torch.Generator().manual_seed(1)
    fire = torch.rand(16, generator=torch.Generator().manual_seed(1)) < 0.5
    out = augment.swap_backgrounds(images, fg, 0.5, g)
    assert 0 < fire.sum() < 16
    for i in range(16):
        assert torch.equal(out[i], images[i]) != bool(fire[i])
    again = augment.swap_backgrounds(images, fg, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)  # a generator fixes the result
    assert augment.swap_backgrounds(images, fg, 0.0) is images


def test_swap_backgrounds_refuses_a_mask_of_the_wrong_shape():
    images, fg = _scene()
    with pytest.raises(ValueError, match="foreground must be"):
        augment.swap_backgrounds(images, fg[:, :8], 1.0)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        augment.swap_backgrounds(images, fg, 1.5)
