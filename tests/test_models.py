"""The 2.5D pose representation (equihand.methods.pose) and the encoder and heads
(equihand.methods.models)."""

from __future__ import annotations

import copy
import math
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from equihand.data import hand_model as hm
from equihand.data.layout import N_JOINTS, SCALE_BONE
from equihand.errors import UserError
from equihand.methods import backbones, models, pose

# --- pose: 2.5D and back ------------------------------------------------------------------------


def _hands(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Realistic camera-frame hands (float64): random gestures and orientations, reference bone
    3-5 cm, 0.4-0.8 m from the camera, inside the image of a pinhole K with f 200-600 px."""
    rng = np.random.default_rng(seed)
    xyz, K = [], []
    for i in range(n):
        fingers, thumb = hm.sample_pose(hm.GESTURE_NAMES[i % len(hm.GESTURE_NAMES)], rng, 20.0)
        joints = hm.forward_kinematics(fingers, thumb) @ hm.random_rotation(rng).T
        joints *= rng.uniform(0.03, 0.05) / np.linalg.norm(joints[9] - joints[10])
        f, z = rng.uniform(200, 600), rng.uniform(0.4, 0.8)
        lateral = rng.uniform(-80, 80, size=2) * z / f  # within 80 px of the principal point
        xyz.append(joints - joints.mean(0) + [lateral[0], lateral[1], z])
        c = 112 + rng.uniform(-5, 5, size=2)
        K.append([[f, 0, c[0]], [0, f * rng.uniform(0.98, 1.02), c[1]], [0, 0, 1]])
    xyz, K = torch.tensor(np.array(xyz)), torch.tensor(np.array(K))
    return xyz, K, torch.linalg.vector_norm(xyz[:, 9] - xyz[:, 10], dim=-1)


def _well_posed(xyz: torch.Tensor, min_deg: float = 30.0) -> torch.Tensor:
    """Hands whose reference bone makes at least `min_deg` with its viewing ray.

    A bone pointing (nearly) at the camera makes the two roots of the root-depth quadratic
    (nearly) coincide: the larger one may be the wrong one and the depth is ill-conditioned.
    """
    n, m = SCALE_BONE
    bone, mid = xyz[:, n] - xyz[:, m], (xyz[:, n] + xyz[:, m]) / 2
    cos = (bone * mid).sum(-1).abs() / (bone.norm(dim=-1) * mid.norm(dim=-1))
    return cos <= math.cos(math.radians(min_deg))


def test_to_25d_is_the_projection_and_the_root_relative_depth():
    xyz, K, scale = _hands(8)
    uv, zr = pose.to_25d(xyz, K, scale)
    assert uv.shape == (8, N_JOINTS, 2) and zr.shape == (8, N_JOINTS)
    for b in range(8):  # the per-sample definition: K @ X, divided by Z
        proj = (K[b] @ xyz[b].T).T
        torch.testing.assert_close(uv[b], proj[:, :2] / proj[:, 2:])
        torch.testing.assert_close(zr[b], (xyz[b, :, 2] - xyz[b, 0, 2]) / scale[b])
    assert torch.all(zr[:, 0] == 0)
    n, m = SCALE_BONE  # the reference bone has unit length in scale units
    torch.testing.assert_close(
        torch.linalg.vector_norm(xyz[:, n] - xyz[:, m], dim=-1) / scale,
        torch.ones(8, dtype=torch.float64),
    )


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-5), (torch.float32, 1e-4)])
def test_round_trip_reproduces_realistic_hands(dtype, tol):
    xyz, K, scale = _hands(200)
    ok = _well_posed(xyz)
    assert ok.float().mean() > 0.8
    xyz, K, scale = xyz[ok].to(dtype), K[ok].to(dtype), scale[ok].to(dtype)
    uv, zr = pose.to_25d(xyz, K, scale)
    rec = pose.from_25d(uv, zr, K, scale)
    assert rec.dtype == dtype and rec.shape == xyz.shape
    assert torch.linalg.vector_norm(rec - xyz, dim=-1).max() < tol


def test_larger_root_is_right_for_almost_all_orientations():
    xyz, K, scale = _hands(400, seed=1)
    uv, zr = pose.to_25d(xyz, K, scale)
    err = torch.linalg.vector_norm(pose.from_25d(uv, zr, K, scale) - xyz, dim=-1).amax(-1)
    assert (err < 1e-6).float().mean() > 0.97


def test_the_true_root_places_every_hand_exactly():
    # the closed form picks the wrong root for a few orientations; the true root depth in bone
    # units (the refiner's target) places every hand, those included
    xyz, K, scale = _hands(400, seed=1)
    uv, zr = pose.to_25d(xyz, K, scale)
    root = pose.true_root_depth(xyz, scale)
    torch.testing.assert_close(root, xyz[:, 0, 2] / scale)
    closed = pose.root_depth(pose.rays(uv, K), zr)
    assert ((closed - root).abs() > 1e-3).any()  # the closed form fails somewhere here
    rec = pose.from_25d(uv, zr, K, scale, root=root)
    assert torch.linalg.vector_norm(rec - xyz, dim=-1).max() < 1e-9


def _affine(batch: int, seed: int) -> torch.Tensor:
    """Per-sample pixel-space similarity transforms (rotation, scale, shift) as (B, 3, 3)."""
    g = torch.Generator().manual_seed(seed)
    angle = (torch.rand(batch, generator=g, dtype=torch.float64) - 0.5) * math.radians(90)
    s = 0.8 + 0.6 * torch.rand(batch, generator=g, dtype=torch.float64)
    t = (torch.rand(batch, 2, generator=g, dtype=torch.float64) - 0.5) * 60
    A = torch.zeros(batch, 3, 3, dtype=torch.float64)
    A[:, 0, 0], A[:, 0, 1] = s * torch.cos(angle), -s * torch.sin(angle)
    A[:, 1, 0], A[:, 1, 1] = s * torch.sin(angle), s * torch.cos(angle)
    A[:, :2, 2], A[:, 2, 2] = t, 1.0
    return A


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-5), (torch.float32, 1e-4)])
def test_round_trip_after_a_pixel_transform(dtype, tol):
    """Augmentation consistency: uv' = A uv with K' = A @ K recovers the same 3D hand."""
    xyz, K, scale = _hands(120, seed=2)
    ok = _well_posed(xyz)
    xyz, K, scale = xyz[ok], K[ok], scale[ok]
    A = _affine(len(xyz), seed=3)
    uv, zr = pose.to_25d(xyz, K, scale)
    uv_h = torch.cat([uv, torch.ones_like(uv[..., :1])], -1)
    uv2 = (uv_h @ A.transpose(-1, -2))[..., :2]
    K2 = A @ K
    uv_direct, zr_direct = pose.to_25d(xyz, K2, scale)
    torch.testing.assert_close(uv2, uv_direct)
    torch.testing.assert_close(zr, zr_direct)
    rec = pose.from_25d(uv2.to(dtype), zr.to(dtype), K2.to(dtype), scale.to(dtype))
    assert torch.linalg.vector_norm(rec.double() - xyz, dim=-1).max() < tol


def test_from_25d_accepts_a_shared_K_and_promotes_half_precision():
    xyz, K, scale = _hands(4, seed=4)
    K = K[:1].expand(4, 3, 3).clone()
    uv, zr = pose.to_25d(xyz, K[0], scale)
    rec_shared = pose.from_25d(uv, zr, K[0], scale)
    torch.testing.assert_close(rec_shared, pose.from_25d(uv, zr, K, scale))
    rec16 = pose.from_25d(uv.bfloat16(), zr.bfloat16(), K.bfloat16(), scale.bfloat16())
    assert rec16.dtype == torch.float32 and torch.isfinite(rec16).all()


def test_degenerate_inputs_give_finite_output_and_gradients():
    K = torch.tensor([[300.0, 0, 112], [0, 300, 112], [0, 0, 1]]).expand(5, 3, 3)
    scale = torch.tensor([0.04, 0.04, 0.04, 0.0, 0.04])
    uv = torch.full((5, N_JOINTS, 2), 112.0)  # every joint on the same pixel (a = 0)
    zr = torch.zeros(5, N_JOINTS)
    zr[2, 9], zr[2, 10] = 3.0, -3.0  # bone longer than 1 in depth alone: no real root
    uv[1, 10] += 1e-4  # nearly coincident reference joints
    uv[4] = torch.randn(N_JOINTS, 2) * 1e6  # far outside the image
    uv.requires_grad_(True)
    zr.requires_grad_(True)
    xyz = pose.from_25d(uv, zr, K, scale)
    assert torch.isfinite(xyz).all()
    xyz.sum().backward()
    assert torch.isfinite(uv.grad).all() and torch.isfinite(zr.grad).all()
    # a joint on the camera plane or a zero scale in to_25d
    bad = torch.zeros(2, N_JOINTS, 3)
    uv_b, zr_b = pose.to_25d(bad, K[:2], torch.zeros(2))
    assert torch.isfinite(uv_b).all() and torch.isfinite(zr_b).all()


def test_normalised_uv_convention():
    size = 32
    uv = torch.tensor([[-0.5, -0.5], [31.5, 31.5], [15.5, 15.5], [0.0, 31.0]])
    norm = pose.uv_to_norm(uv, size)
    torch.testing.assert_close(norm[:3], torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))
    torch.testing.assert_close(pose.norm_to_uv(norm, size), uv)
    torch.testing.assert_close(pose.norm_to_uv(pose.uv_to_norm(uv, (64, 32)), (64, 32)), uv)


# --- models -------------------------------------------------------------------------------------

CFG = {"backbone": "resnet18", "init": "random", "projection_hidden": 512, "projection_dim": 128}


def _images(batch: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# building a ResNet costs most of these tests' time: build each model once, copy where it changes
@pytest.fixture(scope="module")
def built() -> dict[str, nn.Module]:
    torch.manual_seed(1)
    contrastive = models.build_contrastive_model(CFG)
    torch.manual_seed(2)
    pose_model = models.build_pose_model(CFG)
    return {"contrastive": contrastive, "pose": pose_model}


@pytest.fixture
def contrastive(built) -> models.ContrastiveModel:
    return copy.deepcopy(built["contrastive"])


@pytest.fixture
def pose_model(built) -> models.PoseModel:
    return copy.deepcopy(built["pose"])


@pytest.mark.parametrize(
    ("name", "dim"),
    [
        ("resnet18", 512),
        ("resnet34", 512),
        ("resnet50", 2048),
        ("resnet101", 2048),
        ("resnet152", 2048),
        ("regnet_x_400mf", 400),
    ],
)
def test_every_backbone_builds_with_its_feature_dim(name, dim):
    # the structure only (no memory, no initialisation cost) where the initialisation allows it
    device = "cpu" if name in backbones.REGNETS else "meta"
    with torch.device(device):
        net, feature_dim = backbones.build_backbone(name)
    assert feature_dim == dim == backbones.BACKBONES[name]
    assert isinstance(net.fc, nn.Identity)
    last_norm = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)][-1]
    assert last_norm.num_features == dim
    assert backbones.describe_backbone(net.state_dict()) == name


def test_the_schema_and_the_vocabulary_offer_every_backbone():
    from equihand import vocabulary
    from equihand.config import load_schema

    assert vocabulary.BACKBONES == tuple(backbones.BACKBONES)
    properties = load_schema()["properties"]
    assert properties["model"]["properties"]["backbone"]["enum"] == list(backbones.BACKBONES)
    assert properties["study"]["properties"]["backbones"]["items"]["enum"] == list(
        backbones.BACKBONES
    )


def test_regnet_encoder_pools_its_feature_map_and_moves_between_models():
    torch.manual_seed(0)
    encoder = backbones.Encoder("regnet_x_400mf").eval()
    images = _images(2, size=64)
    fmap = encoder.feature_map(images)
    assert fmap.shape == (2, 400, 2, 2)  # 64 px / stride 32
    torch.testing.assert_close(encoder(images), fmap.mean(dim=(2, 3)))
    other = backbones.Encoder("regnet_x_400mf").eval()
    backbones.load_backbone_state(other, backbones.backbone_state(encoder))
    torch.testing.assert_close(other(images), encoder(images))
    with pytest.raises(UserError, match=r"regnet_x_400mf.*resnet18"):
        backbones.load_backbone_state(backbones.Encoder("resnet18"), encoder.state_dict())


def test_unknown_backbone_or_init_is_a_user_error():
    with pytest.raises(UserError, match="resnet18"):
        backbones.build_backbone("vgg16")
    with pytest.raises(UserError, match="imagenet"):
        backbones.build_backbone("resnet18", "simclr")


def test_forward_shapes(contrastive, pose_model):
    images = _images(3)
    assert contrastive(images).shape == (3, 128)
    out = pose_model(images)
    assert set(out) == {"uv_norm", "zr", "features"}
    assert out["uv_norm"].shape == (3, N_JOINTS, 2)
    assert out["zr"].shape == (3, N_JOINTS)
    assert out["features"].shape == (3, 512)
    assert pose_model.encoder(images).shape == (3, 512)
    head = models.ProjectionHead(512, 32, 64)
    assert head(torch.randn(3, 512)).shape == (3, 64)


def test_projection_head_is_peclr(contrastive):
    head = contrastive.projection
    kinds = [type(layer) for layer in head]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert (head[0].in_features, head[0].out_features) == (512, 512)
    assert head[0].bias is not None and head[1].num_features == 512
    assert (head[3].in_features, head[3].out_features) == (512, 128)
    assert head[3].bias is None


def test_pose_head_splits_uv_and_depth():
    head = models.PoseHead(4)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.copy_(torch.arange(N_JOINTS * 3, dtype=torch.float32))
    out = head(torch.zeros(2, 4))
    torch.testing.assert_close(out["uv_norm"][0, 1], torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(out["zr"][0, :2], torch.tensor([2.0, 5.0]))


def test_input_is_normalised_inside(pose_model):
    encoder = pose_model.encoder.eval()
    seen = {}

    def record(module, inputs):
        seen["x"] = inputs[0]

    encoder.backbone.conv1.register_forward_pre_hook(record)
    images = _images(2)
    with torch.no_grad():
        encoder(images)
    mean = torch.tensor(backbones.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(backbones.IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(seen["x"], (images - mean) / std)
    assert "mean" not in encoder.state_dict() and "std" not in encoder.state_dict()


def test_imagenet_init_offline_is_a_user_error(monkeypatch):
    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(UserError) as info:
        models.build_pose_model({**CFG, "backbone": "resnet34", "init": "imagenet"})
    message = str(info.value)
    assert "resnet34" in message and "TORCH_HOME" in message
    assert str(torch.hub.get_dir()) in message and "model.init=random" in message
    assert "Traceback" not in message

    def unreadable(self, *args, **kwargs):
        raise RuntimeError("PytorchStreamReader failed reading zip archive")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", unreadable)
    with pytest.raises(UserError, match="resnet18"):
        backbones.build_backbone("resnet18", "imagenet")


def test_imagenet_init_loads_the_cached_weights(monkeypatch, pose_model):
    cached = {
        **pose_model.encoder.backbone.state_dict(),
        **nn.Linear(512, 1000).state_dict(prefix="fc."),
    }
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", lambda *a, **k: cached)
    net, _ = backbones.build_backbone("resnet18", "imagenet")
    for key, value in net.state_dict().items():
        assert torch.equal(value, cached[key]), key


def test_imagenet_init_reads_a_weights_file_in_the_hub_cache_offline(monkeypatch, tmp_path):
    # the offline path of README and config/freihand.yaml: torchvision's file, named as in its
    # URL, in $TORCH_HOME/hub/checkpoints; nothing is downloaded
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(f"no network for {url}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    weights = torchvision.models.get_model_weights("resnet18").DEFAULT
    target = tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[1]
    with torch.device("meta"):
        shapes = torchvision.models.resnet18().state_dict()  # with ImageNet's 1000-class fc
    g = torch.Generator().manual_seed(11)
    state = {
        k: torch.randn(v.shape, generator=g)
        if v.is_floating_point()
        else torch.zeros((), dtype=v.dtype)
        for k, v in shapes.items()
    }
    target.parent.mkdir(parents=True)
    torch.save(state, target)
    net, _ = backbones.build_backbone("resnet18", "imagenet")
    loaded = net.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith("fc.")}
    assert all(torch.equal(v, state[k]) for k, v in loaded.items())

    target.unlink()  # without the file, the error names where to put it
    with pytest.raises(UserError) as info:
        backbones.build_backbone("resnet18", "imagenet")
    assert str(target) in str(info.value) and "no network" in str(info.value)


def test_backbone_state_moves_from_pretraining_to_finetuning(contrastive, pose_model, built):
    images = _images(2)
    contrastive.eval()
    pose_model.eval()
    with torch.no_grad():
        assert not torch.equal(contrastive.encoder(images), pose_model.encoder(images))
        # a whole pretraining state dict, as in a checkpoint's "model"
        backbones.load_backbone_state(pose_model, contrastive.state_dict())
        assert torch.equal(pose_model(images)["features"], contrastive.encoder(images))
        # the backbone_state form
        other = copy.deepcopy(built["pose"]).eval()
        backbones.load_backbone_state(other, backbones.backbone_state(contrastive))
        assert torch.equal(other.encoder(images), contrastive.encoder(images))


def test_backbone_state_mismatch_names_both_backbones(pose_model):
    with torch.device("meta"):  # only the structure matters
        source = models.build_contrastive_model({**CFG, "backbone": "resnet34"})
    with pytest.raises(UserError, match=r"resnet34.*resnet18"):
        backbones.load_backbone_state(pose_model, source.state_dict())
    state = backbones.backbone_state(pose_model)
    state["conv1.weight"] = state["conv1.weight"][:, :, :3, :3]
    with pytest.raises(UserError, match=r"conv1\.weight"):
        backbones.load_backbone_state(pose_model, state)
    with pytest.raises(UserError, match="no ResNet or RegNet weights"):
        backbones.load_backbone_state(pose_model, {"projection.0.weight": torch.zeros(1)})


def test_eval_is_deterministic_and_builds_are_seeded(built):
    torch.manual_seed(2)  # the seed the fixture built its pose model with
    rebuilt = models.build_pose_model(CFG).eval()
    model = copy.deepcopy(built["pose"]).eval()
    images = _images(2, seed=1)
    with torch.no_grad():
        first, second, other = model(images), model(images), rebuilt(images)
    for key in first:
        assert torch.equal(first[key], second[key])
        assert torch.equal(first[key], other[key])


def test_channels_last_matches_contiguous(pose_model):
    model = pose_model.eval()
    images = _images(2)
    with torch.no_grad():
        ref = model(images)
        model = model.to(memory_format=torch.channels_last)
        out = model(images.contiguous(memory_format=torch.channels_last))
    for key in ref:
        torch.testing.assert_close(out[key], ref[key], rtol=1e-4, atol=1e-4)


def test_autocast_bf16_forward_and_backward_on_cpu(contrastive, pose_model):
    contrastive = contrastive.to(memory_format=torch.channels_last)
    pose_model = pose_model.to(memory_format=torch.channels_last)
    images = _images(2).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = contrastive(images)
        out = pose_model(images)
    assert z.shape == (2, 128) and torch.isfinite(z.float()).all()
    assert out["uv_norm"].shape == (2, N_JOINTS, 2) and torch.isfinite(out["zr"].float()).all()
    (z.float().square().mean() + out["zr"].float().mean()).backward()
    assert torch.isfinite(contrastive.encoder.backbone.conv1.weight.grad).all()
    assert torch.isfinite(pose_model.head.linear.weight.grad).all()


# --- root refinement ----------------------------------------------------------------------------

REFINE = {**CFG, "root_refine": True, "root_refine_hidden": 128}


def _refiner_inputs(n: int, seed: int, noise_px: float, size: int = 224):
    """(uv_norm, zr, K, true root) of realistic hands, with `noise_px` of 2D noise."""
    xyz, K, scale = _hands(n, seed=seed)
    uv, zr = pose.to_25d(xyz, K, scale)
    g = torch.Generator().manual_seed(seed)
    uv = uv + noise_px * torch.randn(uv.shape, generator=g, dtype=uv.dtype)
    root = pose.true_root_depth(xyz, scale)
    return pose.uv_to_norm(uv, size).float(), zr.float(), K.float(), root.float()


def test_untrained_refiner_is_the_clamped_closed_form_and_reads_detached_inputs():
    uv_norm, zr, K, root = _refiner_inputs(16, seed=5, noise_px=0.0)
    low, high = float(root.sort().values[4]), float(root.sort().values[11])
    refiner = models.RootRefiner(depth_range=(low, high)).eval()
    uv_norm.requires_grad_(True)
    zr.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = refiner(uv_norm, zr, K, (224, 224))
    assert out["root"].dtype == torch.float32
    # exact 2.5D: the closed form is the true root (well-posed hands), then clamped
    closed = pose.root_depth(pose.rays(pose.norm_to_uv(uv_norm.detach(), 224), K), zr.detach())
    torch.testing.assert_close(out["root_closed"], closed.clamp(low, high))
    torch.testing.assert_close(out["root"], out["root_closed"])  # zero-initialised last layer
    assert out["root_closed"].min() == low and out["root_closed"].max() == high
    out["root"].sum().backward()
    assert uv_norm.grad is None and zr.grad is None  # the root loss never reaches the head
    assert refiner.mlp[-1].bias.grad is not None


def test_refiner_range_must_be_positive_and_ordered():
    for low, high in ((0.0, 10.0), (10.0, 5.0), (5.0, math.inf)):
        with pytest.raises(ValueError, match="root depth range"):
            models.RootRefiner(depth_range=(low, high))
    unset = models.RootRefiner()
    assert torch.isnan(unset.depth_range).all()


def test_refiner_learns_a_better_root_than_the_noisy_closed_form():
    # 2 px of 2D noise at 224 px: the closed form (one bone) errs by ~2 bone units; the MLP
    # reading every joint learns a better root depth within a few hundred steps (measured: 1.5
    # against 2.2 units, and 3.0 for the median depth)
    torch.manual_seed(0)
    uv_norm, zr, K, root = _refiner_inputs(1024, seed=6, noise_px=2.0)
    test = _refiner_inputs(256, seed=7, noise_px=2.0)
    refiner = models.RootRefiner(depth_range=(float(root.min()) / 1.25, float(root.max()) * 1.25))
    optimizer = torch.optim.Adam(refiner.parameters(), lr=3e-3)
    for step in range(400):
        batch = torch.randperm(len(root), generator=torch.Generator().manual_seed(step))[:64]
        out = refiner(uv_norm[batch], zr[batch], K[batch], (224, 224))
        loss = (out["root"] - root[batch]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    refiner.eval()
    with torch.no_grad():
        out = refiner(*test[:3], (224, 224))
    refined = (out["root"] - test[3]).abs().mean()
    closed = (out["root_closed"] - test[3]).abs().mean()
    constant = (test[3] - root.median()).abs().mean()  # one depth for every hand
    assert refined < 0.85 * closed < constant, (float(refined), float(closed), float(constant))


def test_pose_model_with_refiner_keeps_the_encoder_and_head():
    torch.manual_seed(3)
    plain = models.build_pose_model(CFG).eval()
    torch.manual_seed(3)
    refined = models.build_pose_model(REFINE, (5.0, 40.0)).eval()
    assert plain.refiner is None
    extra = set(refined.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith("refiner.") for k in extra)
    assert all(torch.equal(v, refined.state_dict()[k]) for k, v in plain.state_dict().items())
    K = torch.tensor([[60.0, 0, 16], [0, 60, 16], [0, 0, 1]]).expand(2, 3, 3)
    with torch.no_grad():
        a, b = plain(_images(2), K), refined(_images(2), K)
    assert "root" not in a and b["root"].shape == (2,) and "root" not in refined(_images(2))
    torch.testing.assert_close(a["uv_norm"], b["uv_norm"])
    # a config written before the option existed builds no refiner
    assert models.build_pose_model({k: v for k, v in CFG.items()}).refiner is None
