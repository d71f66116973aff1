"""`equihand synth`: render the synthetic hand dataset in the FreiHAND layout.

Each image is a kinematic right hand (equihand.data.hand_model) in a named gesture plus noise,
turned by a uniformly random rotation, placed at a random distance in front of a pinhole camera,
rendered (equihand.data.render) over a random textured background with distractor shapes, blurred,
noised and JPEG-compressed. Image i of a split depends only on (seed, split, i), so the bytes do
not depend on the number of worker processes. Hand identities (bone lengths, skin tone) are drawn
per identity; training and evaluation identities are disjoint.
"""

from __future__ import annotations

import functools
import io as _io
import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from equihand import progress
from equihand.config import write_resolved
from equihand.data import hand_model as hm
from equihand.data.layout import (
    BONES,
    FINGERS,
    N_JOINTS,
    PART_NAMES,
    SCALE_BONE,
    annotation_path,
    image_path,
    parts_path,
)
from equihand.data.render import (
    Fragments,
    capsule_fragments,
    project,
    resolve,
    shade,
    slab_fragments,
    visible_joints,
)
from equihand.io import atomic_write_json
from equihand.outputs import replace_folder

GENERATOR_VERSION = 1
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
BACKGROUND_BANK = 256  # distinct base textures per seed; each image flips and permutes one
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


# --- identity and scene sampling ---------------------------------------------------------------


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


@functools.cache
def _unit_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates in [0, 1) of an n x n grid (cached, read-only)."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / np.float32(n)
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random textured background: smooth colour fields, stripes/checks or blotches, plus grain.

    Drawn at half resolution and upsampled (the final image is blurred anyway).
    """
    half = max(size // 2, 8)
    base = rng.uniform(0, 1, size=(rng.integers(2, 7), rng.integers(2, 7), 3))
    img = np.asarray(
        Image.fromarray((base * 255).astype(np.uint8)).resize((half, half), Image.BILINEAR),
        dtype=np.float32,
    ) * np.float32(1 / 255)
    kind = rng.integers(3)
    yy, xx = _unit_grid(half)
    if kind == 0:  # stripes or checks
        theta = rng.uniform(0, np.pi)
        period = np.float32(rng.uniform(0.03, 0.25))
        c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
        wave = np.sin((xx * c + yy * s) * np.float32(2 * np.pi) / period)
        if rng.random() < 0.4:
            wave *= np.sin((xx * s - yy * c) * np.float32(2 * np.pi) / period)
        colour = rng.uniform(0, 1, 3).astype(np.float32)
        img = np.where((wave > 0)[..., None], img, 0.5 * img + 0.5 * colour)
    elif kind == 1:  # blotches
        for _ in range(rng.integers(2, 6)):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
            blob = np.exp(((xx - cx) ** 2 + (yy - cy) ** 2) * np.float32(-0.5 / (r * r)))
            colour = rng.uniform(0, 1, 3).astype(np.float32)
            img += blob[..., None] * (colour - img)
    img += rng.standard_normal((half, half, 1), dtype=np.float32) * np.float32(
        rng.uniform(0.01, 0.06)
    )
    pil = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return pil.resize((size, size), Image.NEAREST)  # the final blur softens the blocks


@functools.lru_cache(maxsize=BACKGROUND_BANK)
def _bank_background(seed: int, size: int, k: int) -> np.ndarray:
    """Base texture k of the bank (computed once per process, identical in every process)."""
    image = np.asarray(_background(np.random.default_rng([seed, 104729, k]), size))
    image.flags.writeable = False
    return image


def _varied_background(rng: np.random.Generator, seed: int, size: int) -> Image.Image:
    """A bank texture, randomly flipped, transposed and channel-permuted (48 variants each)."""
    image = _bank_background(seed, size, int(rng.integers(BACKGROUND_BANK)))
    if rng.random() < 0.5:
        image = image[::-1]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rng.random() < 0.5:
        image = image.transpose(1, 0, 2)
    return Image.fromarray(np.ascontiguousarray(image[..., rng.permutation(3)]))


def _flatten(background: Image.Image, contrast: float) -> Image.Image:
    """Scale the background's deviations from its mean colour by `contrast` (1 = unchanged)."""
    if contrast >= 1.0:
        return background
    pixels = np.asarray(background, dtype=np.float32)
    mean = pixels.reshape(-1, 3).mean(axis=0)
    flat = mean + np.float32(contrast) * (pixels - mean)
    return Image.fromarray((flat + 0.5).clip(0, 255).astype(np.uint8))


def _draw_distractors(pil: Image.Image, rng: np.random.Generator, skin: np.ndarray, n: int):
    """Flat shapes behind the hand; some skin-coloured, so colour alone does not find the hand."""
    size = pil.width
    draw = ImageDraw.Draw(pil)
    for _ in range(rng.integers(0, n + 1)):
        colour = skin * rng.uniform(0.7, 1.1) if rng.random() < 0.3 else rng.uniform(0, 1, 3)
        fill = tuple(int(c) for c in np.clip(colour * 255, 0, 255))
        x0, y0 = rng.uniform(-0.1, 1.0, 2) * size
        w, h = rng.uniform(0.05, 0.35, 2) * size
        box = [x0, y0, x0 + w, y0 + h]
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse(box, fill=fill)
        elif kind == 1:
            draw.rectangle(box, fill=fill)
        else:
            draw.line(box, fill=fill, width=int(rng.integers(2, max(3, size // 16))))
    return pil


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

    background = _flatten(_varied_background(rng, p.seed, size), p.background_contrast)
    image = np.array(_draw_distractors(background, rng, skin, p.distractors))
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


# --- writing the dataset -------------------------------------------------------------------------


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    buf = _io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _encode_png(labels: np.ndarray) -> bytes:
    buf = _io.BytesIO()
    Image.fromarray(labels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _render_chunk(job: tuple[Path, str, SynthParams, list[int]]) -> list[dict]:
    root, split, p, indices = job
    out = []
    for i in indices:
        s = render_sample(i, split, p)
        image_path(root, split, i).write_bytes(_encode_jpeg(s.image, p.jpeg_quality))
        parts_path(root, split, i).write_bytes(_encode_png(s.parts))
        out.append(
            {
                "xyz": s.xyz.tolist(),
                "K": s.K.tolist(),
                "scale": float(np.linalg.norm(s.xyz[SCALE_BONE[0]] - s.xyz[SCALE_BONE[1]])),
                "uv": np.round(s.uv, 4).tolist(),
                "visibility": s.visibility.astype(int).tolist(),
                "gesture": s.gesture,
                "hand_id": s.hand_id,
            }
        )
    return out


def write_split(root: Path, split: str, n: int, p: SynthParams, workers: int) -> None:
    (root / split / "rgb").mkdir(parents=True, exist_ok=True)
    (root / split / "parts").mkdir(parents=True, exist_ok=True)
    chunk = 64
    jobs = [(root, split, p, list(range(i, min(i + chunk, n)))) for i in range(0, n, chunk)]
    records: list[dict] = []
    bar = progress.bar(total=n, desc=f"synth {split}", unit="img")
    if workers == 1:
        results = map(_render_chunk, jobs)
        for r in results:
            records.extend(r)
            bar.update(len(r))
    else:
        with mp.get_context("fork").Pool(workers) as pool:
            for r in pool.imap(_render_chunk, jobs):
                records.extend(r)
                bar.update(len(r))
    bar.close()
    for key in ("xyz", "K", "scale", "uv", "visibility", "gesture", "hand_id"):
        atomic_write_json(annotation_path(root, split, key), [r[key] for r in records])


def synthesize(out_dir: str | Path, config: dict, *, force: bool = False) -> Path:
    """Render the whole dataset described by `config["synth"]` into `out_dir` (atomically;
    equihand.outputs says what may be there already)."""
    s = config["synth"]
    workers = s["workers"] or os.cpu_count() or 1
    out_dir = Path(out_dir)
    with replace_folder(out_dir, "synth", force=force) as tmp:
        for split, n in (("training", s["n_train"]), ("evaluation", s["n_eval"])):
            write_split(tmp, split, n, SynthParams.from_config(config, split), workers)
        meta = {
            "generator": "equihand.synth",
            "generator_version": GENERATOR_VERSION,
            "image_size": s["image_size"],
            "seed": s["seed"],
            "gesture_names": list(hm.GESTURE_NAMES),
            "part_names": list(PART_NAMES),
            "n_train": s["n_train"],
            "n_eval": s["n_eval"],
        }
        (tmp / "synth_meta.json").write_text(json.dumps(meta, indent=2))
        write_resolved(config, tmp / "config.yaml")
        contact_sheet(tmp, tmp / "contact_sheet.png")
    return out_dir


# --- looking at it ------------------------------------------------------------------------------

FINGER_COLOURS = [(255, 60, 60), (255, 170, 0), (60, 200, 60), (0, 160, 255), (200, 80, 255)]


def draw_skeleton(image: Image.Image, uv: np.ndarray, vis: np.ndarray | None = None) -> None:
    """Draw the 21-joint skeleton over `image` (in place); hidden joints as hollow circles."""
    draw = ImageDraw.Draw(image)
    r = max(1, image.width // 110)
    for parent, child in BONES:
        colour = FINGER_COLOURS[(child - 1) // 4]
        draw.line([tuple(uv[parent]), tuple(uv[child])], fill=colour, width=max(1, r // 2 + 1))
    for j, (u, v) in enumerate(uv):
        colour = (255, 255, 255) if j == 0 else FINGER_COLOURS[(j - 1) // 4]
        hidden = vis is not None and not vis[j]
        draw.ellipse([u - r, v - r, u + r, v + r], outline=colour, fill=None if hidden else colour)


def contact_sheet(root: Path, out: Path, n: int = 24, split: str = "training") -> Path:
    """A grid of samples: the image, the image with its projected skeleton, and its part mask."""
    uv = json.loads(annotation_path(root, split, "uv").read_text())
    vis = json.loads(annotation_path(root, split, "visibility").read_text())
    gestures = json.loads(annotation_path(root, split, "gesture").read_text())
    n = min(n, len(uv))
    tiles = []
    palette = np.array(
        [[0, 0, 0], [230, 200, 170], *FINGER_COLOURS, [120, 120, 120]], dtype=np.uint8
    )
    for i in range(n):
        img = Image.open(image_path(root, split, i)).convert("RGB")
        skel = img.copy()
        draw_skeleton(skel, np.asarray(uv[i]), np.asarray(vis[i], dtype=bool))
        ImageDraw.Draw(skel).text((3, 2), hm.GESTURE_NAMES[gestures[i]], fill=(255, 255, 255))
        parts = Image.fromarray(palette[np.asarray(Image.open(parts_path(root, split, i)))])
        tiles.append((img, skel, parts))
    w = tiles[0][0].width
    cols = 4
    rows = (n + cols - 1) // cols
    sheet = Image.new("RGB", (cols * 3 * w + (cols - 1) * 6, rows * w), (255, 255, 255))
    for k, triple in enumerate(tiles):
        x0 = (k % cols) * (3 * w + 6)
        for j, tile in enumerate(triple):
            sheet.paste(tile, (x0 + j * w, (k // cols) * w))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


# --- CLI -----------------------------------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("--out", help="dataset folder (default: <data_dir>/synth)")


def run(args, config: dict) -> None:
    out = Path(args.out) if args.out else Path(config["data_dir"]) / "synth"
    synthesize(out, config, force=args.force)
    print(
        f"wrote {config['synth']['n_train']} training and {config['synth']['n_eval']} "
        f"evaluation images to {out} (contact sheet: {out / 'contact_sheet.png'})"
    )
