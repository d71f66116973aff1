"""One synthetic image: a kinematic right hand (equihand.data.hand_model) in a named gesture plus
noise, turned by a random rotation, placed at a random distance in front of a pinhole camera and
rendered (equihand.data.render) over a textured background with distractor shapes
(equihand.data.backgrounds). `render_sample` depends only on (seed, split, index); hand identities
(bone lengths, skin tone) are drawn per identity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from equihand.data import hand_model as hm
from equihand.data.backgrounds import draw_distractors, flatten_background, varied_background
from equihand.data.layout import BONES, FINGERS, N_JOINTS, PART_NAMES
from equihand.data.render import (
    Fragments,
    capsule_fragments,
    project,
    resolve,
    shade,
    slab_fragments,
    visible_joints,
)

SPLIT_CODES = {"training": 0, "evaluation": 1}
PART_ID = {name: i for i, name in enumerate(PART_NAMES)}
# Skin tones (linear-ish RGB in [0, 1]) from light to dark; each hand draws one and varies it.
SKIN_TONES = np.array(
    [
        [0.96, 0.80, 0.69],
        [0.90, 0.72, 0.58],
        [0.80, 0.60, 0.46],
        [0.68, 0.48, 0.34],
        [0.52, 0.36, 0.25],
        [0.36, 0.24, 0.16],
    ]
)
SLEEVE_PROBABILITY = 0.5  # the forearm is covered by a sleeve of random colour
OCCLUDER_PROBABILITY = 0.15  # a thin object passes in front of the hand
PALM_THICKNESS_M = 0.024
# The hand centre lands within CENTRE_JITTER * size of the image centre and every joint within
# FIT_FRACTION * size of the hand centre, so joints stay inside the image (0.08 + 0.40 < 0.5).
CENTRE_JITTER = 0.08
FIT_FRACTION = 0.40
FOREARM_LENGTH_M = 0.16


@dataclass(frozen=True)
class SynthParams:
    """What one rendering worker needs (picklable)."""

    seed: int
    image_size: int
    n_hands: int
    hand_id_offset: int
    focal_px: tuple[float, float]
    distance_m: tuple[float, float]
    roll_deg: float
    tilt_deg: float
    pose_noise_deg: float
    distractors: int
    jpeg_quality: int
    background_contrast: float = 1.0

    @staticmethod
    def from_config(cfg: dict, split: str) -> SynthParams:
        s = cfg["synth"]
        train = split == "training"
        return SynthParams(
            seed=s["seed"],
            image_size=s["image_size"],
            n_hands=s["n_hands_train"] if train else s["n_hands_eval"],
            hand_id_offset=0 if train else s["n_hands_train"],
            focal_px=tuple(s["focal_px"]),
            distance_m=tuple(s["distance_m"]),
            roll_deg=s["roll_deg"],
            tilt_deg=s["tilt_deg"],
            pose_noise_deg=s["pose_noise_deg"],
            distractors=s["distractors"],
            jpeg_quality=s["jpeg_quality"],
            background_contrast=s["background_contrast"],
        )


@dataclass
class Sample:
    image: np.ndarray  # (S, S, 3) uint8
    parts: np.ndarray  # (S, S) uint8
    xyz: np.ndarray  # (21, 3) metres, camera frame
    K: np.ndarray  # (3, 3)
    uv: np.ndarray  # (21, 2) pixels
    visibility: np.ndarray  # (21,) bool
    gesture: int
    hand_id: int


def hand_identity(seed: int, hand_id: int) -> tuple[hm.HandShape, np.ndarray]:
    """The shape and skin colour of hand `hand_id` (the same wherever it appears)."""
    rng = np.random.default_rng([seed, 7919, hand_id])
    shape = hm.HandShape.sample(rng)
    tone = rng.uniform(0, len(SKIN_TONES) - 1)
    lo = int(np.floor(tone))
    hi = min(lo + 1, len(SKIN_TONES) - 1)
    skin = SKIN_TONES[lo] + (tone - lo) * (SKIN_TONES[hi] - SKIN_TONES[lo])
    skin = np.clip(skin * rng.normal(1.0, 0.04, size=3), 0.05, 1.0)
    return shape, skin


def _camera(rng: np.random.Generator, p: SynthParams) -> np.ndarray:
    size = p.image_size
    f = rng.uniform(*p.focal_px) * size / 224.0
    c = (size - 1) / 2 + rng.normal(0, 1.5, size=2) * size / 224.0
    return np.array([[f, 0.0, c[0]], [0.0, f, c[1]], [0.0, 0.0, 1.0]])


def _place(xyz_hand, R, K, rng, p: SynthParams) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the hand, put its centre at a random distance, keep it inside the image."""
    size = p.image_size
    centre = xyz_hand.mean(axis=0)
    local = (xyz_hand - centre) @ R.T
    depth = rng.uniform(*p.distance_m)
    target = (
        np.array([(size - 1) / 2, (size - 1) / 2])
        + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, 2) * size
    )
    for _ in range(4):  # move back until the hand fits with a margin
        t = np.array(
            [
                (target[0] - K[0, 2]) * depth / K[0, 0],
                (target[1] - K[1, 2]) * depth / K[1, 1],
                depth,
            ]
        )
        uv = project(local + t, K)
        extent = np.abs(uv - target).max()
        if extent <= FIT_FRACTION * size:
            break
        depth *= extent / (FIT_FRACTION * size) * 1.02
    return local + t, t - centre @ R.T


def render_sample(index: int, split: str, p: SynthParams) -> Sample:
    """Render image `index` of `split`; depends only on (p, split, index)."""
    rng = np.random.default_rng([p.seed, SPLIT_CODES[split], index])
    hand_id = p.hand_id_offset + int(rng.integers(p.n_hands))
    shape, skin = hand_identity(p.seed, hand_id)
    gesture = int(rng.integers(len(hm.GESTURE_NAMES)))
    fingers, thumb = hm.sample_pose(hm.GESTURE_NAMES[gesture], rng, p.pose_noise_deg)
    xyz_hand, dorsal_hand = hm.forward_kinematics_with_frames(fingers, thumb, shape)
    radii = hm.joint_radii(shape)

    if p.roll_deg >= 180 and p.tilt_deg >= 180:
        R = hm.random_rotation(rng)
    else:
        R = hm.limited_rotation(rng, p.roll_deg, p.tilt_deg)
    K = _camera(rng, p)
    xyz, offset = _place(xyz_hand, R, K, rng, p)  # camera = hand @ R.T + offset

    def cam(points_hand):
        return points_hand @ R.T + offset

    dorsal = dorsal_hand @ R.T
    size = p.image_size
    skin_var = np.clip(skin * rng.normal(1.0, 0.03, 3), 0, 1)
    palm_colour = np.clip(skin_var * 1.06 + 0.04, 0, 1)  # palms are lighter than the dorsum
    nail_colour = np.clip(skin_var * 0.6 + np.array([0.38, 0.33, 0.33]), 0, 1)
    part_of_finger = [PART_ID[f] for f in FINGERS]
    caps_a, caps_b, caps_ra, caps_rb, caps_colour, caps_label, caps_nail = ([] for _ in range(7))

    def capsule(a, b, ra, rb, colour, label, nail=(0.0, 0.0, 0.0)):
        for lst, x in zip(
            (caps_a, caps_b, caps_ra, caps_rb, caps_colour, caps_label, caps_nail),
            (a, b, ra, rb, colour, label, nail),
            strict=True,
        ):
            lst.append(x)

    # fingers and thumb: one capsule per bone (the wrist-to-MCP bones live inside the palm);
    # the thumb metacarpal is the fleshy thenar body, part of the palm
    capsule(xyz[0], xyz[1], radii[0] * 0.8, radii[1] * 1.2, skin_var, PART_ID["palm"])
    for parent, child in BONES:
        if parent == 0:
            continue
        nail = dorsal[child] if child % 4 == 0 else (0.0, 0.0, 0.0)
        capsule(
            xyz[parent],
            xyz[child],
            radii[parent],
            radii[child],
            skin_var,
            part_of_finger[(child - 1) // 4],
            nail,
        )

    # palm: a slab through the wrist edges and MCPs, its rim rounded by capsules
    s = shape.size
    wrist_l = np.array([-0.026, 0.004, 0.0]) * s
    wrist_r = np.array([0.028, 0.004, 0.0]) * s
    outline = cam(np.stack([wrist_l, *xyz_hand[[1, 5, 9, 13, 17]], wrist_r]))
    facing_palmar = float(dorsal[0] @ outline.mean(axis=0)) > 0  # the dorsum points away
    rim = PALM_THICKNESS_M * s / 2
    # (the knuckle edges between MCPs are covered by the fingers' own MCP spheres)
    for i, j in ((0, 1), (1, 2), (5, 6), (6, 0)):
        capsule(outline[i], outline[j], rim, rim, skin_var, PART_ID["palm"])

    # forearm (bare or sleeved), bent at the wrist
    bend = hm._rot_x(rng.uniform(-35, 35)) @ hm._rot_z(rng.uniform(-20, 20))
    elbow = cam(bend @ np.array([0.0, -FOREARM_LENGTH_M * s, 0.0]))
    sleeve = rng.random() < SLEEVE_PROBABILITY
    arm_colour = rng.uniform(0.05, 0.95, 3) if sleeve else skin_var
    capsule(
        cam(np.array([0.0, -0.02, 0.0])), elbow, 0.02 * s, 0.03 * s, arm_colour, PART_ID["forearm"]
    )

    # occasionally a thin object (label 0: not hand) passes in front of the hand
    if rng.random() < OCCLUDER_PROBABILITY:
        ends = np.array([xyz[rng.integers(N_JOINTS)], xyz[rng.integers(N_JOINTS)]])
        ends += rng.normal(0, 0.06, size=(2, 3))
        direction = ends[1] - ends[0]
        ends = np.stack([ends[0] - 2 * direction, ends[1] + 2 * direction])
        ends[:, 2] = xyz[:, 2].min() - rng.uniform(0.03, 0.1)
        capsule(ends[0], ends[1], 0.006, 0.006, rng.uniform(0, 1, 3), 0)

    image_shape = (size, size)
    caps_a = np.asarray(caps_a)
    n_caps = len(caps_a)
    frags = Fragments.concat(
        [
            capsule_fragments(
                K,
                caps_a,
                np.asarray(caps_b),
                np.asarray(caps_ra),
                np.asarray(caps_rb),
                image_shape,
            ),
            slab_fragments(K, outline, PALM_THICKNESS_M * s, image_shape, prim=n_caps),
        ]
    )
    surface = resolve(frags, image_shape)
    # per-primitive tables (capsules, then the palm slab) -> per-pixel colour and part label
    colours = np.vstack([np.asarray(caps_colour), palm_colour if facing_palmar else skin_var])
    labels = np.asarray([*caps_label, PART_ID["palm"]], dtype=np.uint8)
    nails = np.vstack([np.asarray(caps_nail), np.zeros(3)]).astype(np.float32)
    front = surface.front
    albedo = colours.astype(np.float32)[front.prim]
    tip = np.flatnonzero(nails.any(axis=1)[front.prim] & (front.t > 0.62))
    on_nail = (front.normal[tip] * nails[front.prim[tip]]).sum(axis=1) > 0.45
    albedo[tip[on_nail]] = nail_colour
    light = np.array([rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9), -1.0])  # camera side
    colour = shade(front.normal, albedo, light, rng.uniform(0.25, 0.5), rng.uniform(0, 0.12))
    part_map = np.where(surface.prim >= 0, labels[surface.prim], 0).astype(np.uint8)

    background = flatten_background(varied_background(rng, p.seed, size), p.background_contrast)
    image = np.array(draw_distractors(background, rng, skin, p.distractors))
    image.reshape(-1, 3)[front.rows * size + front.cols] = (colour * 255 + 0.5).astype(np.uint8)
    # camera: blur, exposure (gain and bias, as a lookup table) and grey sensor noise
    pil = Image.fromarray(image).filter(
        ImageFilter.BoxBlur(radius=float(rng.uniform(0.3, 0.8)) * size / 224)
    )
    gain, bias = rng.uniform(0.8, 1.15), rng.uniform(-0.06, 0.06) * 255
    exposure = np.round(np.arange(256) * gain + bias).astype(np.int16)
    amplitude = int(rng.integers(0, 7))  # noise is uniform in [-amplitude, amplitude]
    noise = rng.integers(-amplitude, amplitude + 1, size=(size, size, 1), dtype=np.int16)
    image = np.clip(np.take(exposure, np.asarray(pil)) + noise, 0, 255).astype(np.uint8)

    xyz = np.round(xyz, 6)
    K = np.round(K, 4)
    uv = project(xyz, K)
    vis = visible_joints(surface, uv, xyz, radii)
    return Sample(image, part_map, xyz, K, uv, vis, gesture, hand_id)
