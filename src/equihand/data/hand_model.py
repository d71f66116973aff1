"""A kinematic right hand: 21 joints in FreiHAND order, named gestures, anatomical limits.

Hand frame (metres): wrist at the origin, fingers along +y, x towards the pinky side, z out of the
back of the hand (dorsal). Seen from the back with the fingers up, the thumb is on the left (-x)
as for a real right hand. Flexion curls a finger towards the palm (-z).

Each finger has an MCP joint with flexion and abduction (positive abduction turns the finger
towards the thumb) and PIP/DIP joints with flexion only. The thumb has a two-axis CMC joint
(palmar abduction away from the palm plane, opposition across the palm) and flexing MCP and IP
joints in a frame rolled about its long axis, so that it flexes across the palm as a real thumb.

Angles are in degrees. Bone lengths are adult averages with per-hand variation; the middle finger
MCP-PIP bone (FreiHAND's reference "scale" bone) is about 4.5 cm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from equihand.data.layout import FINGERS, N_JOINTS

# --- skeleton constants (metres) ----------------------------------------------------------------
# MCP positions in the hand frame (x, y, z): index to pinky; the palm arches slightly (z < 0 at
# the sides) so that a flat hand is not perfectly planar.
MCP_POSITIONS = np.array(
    [
        [-0.024, 0.086, -0.002],  # index
        [-0.003, 0.088, 0.000],  # middle
        [0.017, 0.082, -0.002],  # ring
        [0.034, 0.073, -0.006],  # pinky
    ]
)
# Splay of each finger's rest direction in the palm plane (degrees, positive towards the thumb).
FINGER_SPLAY_DEG = np.array([6.0, 0.0, -6.0, -13.0])
# Proximal, middle, distal phalanx lengths: index, middle, ring, pinky.
PHALANX_LENGTHS = np.array(
    [
        [0.042, 0.025, 0.021],
        [0.046, 0.029, 0.022],
        [0.043, 0.028, 0.022],
        [0.034, 0.020, 0.020],
    ]
)
# Thumb: CMC position (joint 1), rest direction (degrees from +y towards the thumb side, -x),
# roll of its flexion axis about its long axis, and metacarpal / proximal / distal lengths.
THUMB_CMC_POSITION = np.array([-0.022, 0.022, -0.014])
THUMB_REST_DEG = 48.0
THUMB_ROLL_DEG = -55.0
THUMB_LENGTHS = np.array([0.044, 0.033, 0.027])
# Joint radii (metres) at wrist side and tip side of every finger bone, used by the renderer.
FINGER_RADIUS = np.array([0.0095, 0.0095, 0.0088, 0.0080])  # index..pinky at the MCP
THUMB_RADIUS = 0.0115
TIP_TAPER = 0.78  # tip radius relative to the MCP radius

# --- anatomical joint limits (degrees) ----------------------------------------------------------
# finger: MCP flexion, PIP flexion, DIP flexion, MCP abduction
FINGER_LIMITS = np.array(
    [
        [-25.0, 95.0],
        [0.0, 110.0],
        [0.0, 85.0],
        [-22.0, 22.0],
    ]
)
# thumb: CMC palmar abduction, CMC opposition, MCP flexion, IP flexion
THUMB_LIMITS = np.array(
    [
        [-10.0, 70.0],
        [-25.0, 65.0],
        [-10.0, 70.0],
        [-15.0, 85.0],
    ]
)

# --- gestures ---------------------------------------------------------------------------------
# Each gesture: per finger (index, middle, ring, pinky) [MCP, PIP, DIP flexion, abduction] and
# thumb [palmar abduction, opposition, MCP flexion, IP flexion].
_STRAIGHT = [0, 0, 0, 0]
_CURLED = [85, 100, 60, 0]
GESTURES: dict[str, dict[str, list]] = {
    "open_palm": {
        "fingers": [[0, 0, 0, 12], [0, 0, 0, 2], [0, 0, 0, -8], [0, 0, 0, -16]],
        "thumb": [15, -15, 0, 0],
    },
    "fist": {"fingers": [_CURLED] * 4, "thumb": [35, 45, 45, 35]},
    "point": {"fingers": [_STRAIGHT, _CURLED, _CURLED, _CURLED], "thumb": [35, 45, 35, 30]},
    "victory": {
        "fingers": [[0, 0, 0, 12], [0, 0, 0, -10], _CURLED, _CURLED],
        "thumb": [40, 55, 35, 35],
    },
    "thumbs_up": {"fingers": [_CURLED] * 4, "thumb": [5, -20, 0, 0]},
    "pinch": {
        "fingers": [[45, 40, 20, 0], [30, 35, 20, 0], [25, 30, 15, -4], [20, 25, 15, -8]],
        "thumb": [45, 35, 15, 15],
    },
    "ok": {
        "fingers": [[55, 55, 35, 0], [5, 5, 0, 0], [5, 5, 0, -8], [5, 5, 0, -16]],
        "thumb": [45, 40, 15, 15],
    },
    "rock": {
        "fingers": [[0, 0, 0, 8], _CURLED, _CURLED, [0, 0, 0, -15]],
        "thumb": [40, 55, 35, 35],
    },
    "three": {
        "fingers": [[0, 0, 0, 10], [0, 0, 0, 0], [0, 0, 0, -10], _CURLED],
        "thumb": [40, 60, 35, 40],
    },
    "call": {"fingers": [_CURLED, _CURLED, _CURLED, [0, 0, 0, -18]], "thumb": [5, -20, 0, 0]},
    "relaxed": {
        "fingers": [[20, 30, 15, 5], [25, 35, 20, 0], [30, 40, 20, -5], [35, 45, 25, -10]],
        "thumb": [20, 10, 15, 15],
    },
}
GESTURE_NAMES = tuple(GESTURES)


@dataclass(frozen=True)
class HandShape:
    """One hand identity: an overall size and per-bone length factors."""

    size: float
    finger_factors: np.ndarray  # (4, 3) multiplies PHALANX_LENGTHS
    thumb_factors: np.ndarray  # (3,) multiplies THUMB_LENGTHS
    palm_factor: float  # multiplies MCP and CMC positions

    @staticmethod
    def sample(rng: np.random.Generator) -> HandShape:
        return HandShape(
            size=float(np.clip(rng.normal(1.0, 0.08), 0.8, 1.2)),
            finger_factors=np.clip(rng.normal(1.0, 0.04, size=(4, 3)), 0.9, 1.1),
            thumb_factors=np.clip(rng.normal(1.0, 0.04, size=3), 0.9, 1.1),
            palm_factor=float(np.clip(rng.normal(1.0, 0.04), 0.9, 1.1)),
        )

    @staticmethod
    def mean() -> HandShape:
        return HandShape(1.0, np.ones((4, 3)), np.ones(3), 1.0)


def _rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def clip_pose(fingers: np.ndarray, thumb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clamp finger (4, 4) and thumb (4,) angles to the anatomical limits."""
    fingers = np.clip(fingers, FINGER_LIMITS[:, 0], FINGER_LIMITS[:, 1])
    thumb = np.clip(thumb, THUMB_LIMITS[:, 0], THUMB_LIMITS[:, 1])
    return fingers, thumb


def sample_pose(
    gesture: str, rng: np.random.Generator, noise_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """A gesture's angles plus Gaussian noise, within the joint limits."""
    g = GESTURES[gesture]
    fingers = np.asarray(g["fingers"], dtype=float) + rng.normal(0, noise_deg, size=(4, 4))
    thumb = np.asarray(g["thumb"], dtype=float) + rng.normal(0, noise_deg, size=4)
    # abduction noise is smaller than flexion noise in real hands
    fingers[:, 3] = np.asarray(g["fingers"], dtype=float)[:, 3] + rng.normal(
        0, noise_deg / 3, size=4
    )
    return clip_pose(fingers, thumb)


def forward_kinematics(
    fingers: np.ndarray, thumb: np.ndarray, shape: HandShape | None = None
) -> np.ndarray:
    """Joint positions (21, 3) in the hand frame for finger (4, 4) and thumb (4,) angles."""
    return forward_kinematics_with_frames(fingers, thumb, shape)[0]


def forward_kinematics_with_frames(
    fingers: np.ndarray, thumb: np.ndarray, shape: HandShape | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions (21, 3) and the dorsal direction (21, 3) of the bone ending at each joint.

    The dorsal direction (the back-of-hand side of a finger, where the nail is) lets the renderer
    tell the palmar from the dorsal side of every bone.
    """
    shape = shape or HandShape.mean()
    xyz = np.zeros((N_JOINTS, 3))
    dorsal = np.zeros((N_JOINTS, 3))
    dorsal[0] = dorsal[1] = [0.0, 0.0, 1.0]
    for f in range(4):
        dorsal[5 + 4 * f] = [0.0, 0.0, 1.0]
    s = shape.size
    # thumb: joints 1..4
    base = THUMB_CMC_POSITION * s * shape.palm_factor
    xyz[1] = base
    abd, opp, mcp, ip = thumb
    rot = _rot_z(THUMB_REST_DEG) @ _rot_z(-opp) @ _rot_x(-abd) @ _rot_y(THUMB_ROLL_DEG)
    lengths = THUMB_LENGTHS * shape.thumb_factors * s
    pos = base
    for k, flex in enumerate((0.0, mcp, ip)):
        rot = rot @ _rot_x(-flex)
        pos = pos + rot @ np.array([0.0, lengths[k], 0.0])
        xyz[2 + k] = pos
        dorsal[2 + k] = rot @ np.array([0.0, 0.0, 1.0])  # +z of the rolled frame: nail side
    # fingers: joints 5..20
    for f in range(4):
        first = 5 + 4 * f
        pos = MCP_POSITIONS[f] * s * shape.palm_factor
        xyz[first] = pos
        mcp_flex, pip, dip, abduction = fingers[f]
        rot = _rot_z(FINGER_SPLAY_DEG[f] + abduction)
        lengths = PHALANX_LENGTHS[f] * shape.finger_factors[f] * s
        for k, flex in enumerate((mcp_flex, pip, dip)):
            rot = rot @ _rot_x(-flex)
            pos = pos + rot @ np.array([0.0, lengths[k], 0.0])
            xyz[first + 1 + k] = pos
            dorsal[first + 1 + k] = rot @ np.array([0.0, 0.0, 1.0])
    return xyz, dorsal


def joint_radii(shape: HandShape | None = None) -> np.ndarray:
    """Radius (metres) of the hand's flesh around each of the 21 joints."""
    s = (shape or HandShape.mean()).size
    radii = np.zeros(N_JOINTS)
    radii[0] = 0.022
    taper = np.linspace(1.0, TIP_TAPER, 4)
    radii[1:5] = THUMB_RADIUS * taper
    for f in range(4):
        radii[5 + 4 * f : 9 + 4 * f] = FINGER_RADIUS[f] * taper
    return radii * s


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation matrix about unit `axis` by `angle` radians."""
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


# hand frame -> camera frame (x right, y down, z forward) with the fingers up and the back of the
# hand facing the camera: a half turn about x
FINGERS_UP_BACK = np.diag([1.0, -1.0, -1.0])


def limited_rotation(rng: np.random.Generator, roll_deg: float, tilt_deg: float) -> np.ndarray:
    """A hand orientation near fingers-up, facing the camera (FreiHAND-like).

    Back or palm towards the camera (equally likely), tilted about a random in-plane axis by an
    angle uniform in [0, tilt_deg], then rolled in the image plane by an angle uniform in
    [-roll_deg, roll_deg]. Hand frame -> camera frame.
    """
    flip = _axis_angle(np.array([0.0, 1.0, 0.0]), np.pi * int(rng.integers(2)))
    phi = rng.uniform(0, 2 * np.pi)
    tilt = _axis_angle(
        np.array([np.cos(phi), np.sin(phi), 0.0]), np.radians(rng.uniform(0, tilt_deg))
    )
    roll = _axis_angle(np.array([0.0, 0.0, 1.0]), np.radians(rng.uniform(-roll_deg, roll_deg)))
    return roll @ tilt @ flip @ FINGERS_UP_BACK


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly from SO(3) (normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def finger_of_joint(j: int) -> str:
    """'wrist' or the finger name of joint j (FreiHAND order)."""
    return "wrist" if j == 0 else FINGERS[(j - 1) // 4]
