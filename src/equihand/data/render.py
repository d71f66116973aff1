"""A small numpy rasteriser for hands: capsules, a palm slab, a z-buffer, Lambert + Phong shading.

Pixel convention (used everywhere in equihand): pixel (column u, row v) has its centre at the
continuous image coordinate (u, v); a point X in the camera frame projects to
(u, v) = (K @ X)[:2] / (K @ X)[2].

Primitives become fragments (one candidate surface point per covered pixel) computed for all
primitives at once, each only inside its own bounding box; a z-buffer (`resolve`) then keeps the
front-most fragment of every pixel. The cost of an image is the area of the hand, with no Python
loop over pixels or primitives. Capsules (tapered cylinders with spherical ends) are drawn as
perspective impostors: for each pixel the closest point on the projected axis gives the axis depth,
the radius there, and the sphere-like bulge towards the camera, hence depth and surface normal.
The palm is a thick planar polygon whose depth comes from the exact ray-plane intersection; its rim
is rounded by capsules along its edges. Self-occlusion is resolved by the z-buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Fragments:
    """Candidate surface points of primitives: one per pixel a primitive covers."""

    rows: np.ndarray  # (N,) int
    cols: np.ndarray  # (N,) int
    depth: np.ndarray  # (N,) float32, metres
    normal: np.ndarray  # (N, 3) float32, camera frame, facing the camera (z < 0)
    t: np.ndarray  # (N,) float32, position along a capsule's axis (0 at a, 1 at b)
    prim: np.ndarray  # (N,) int, index of the primitive in the caller's tables

    @staticmethod
    def concat(parts: list[Fragments]) -> Fragments:
        return Fragments(
            *(np.concatenate([getattr(p, k) for p in parts]) for k in Fragments.__annotations__)
        )

    @staticmethod
    def empty() -> Fragments:
        z = np.zeros(0, dtype=np.float32)
        i = np.zeros(0, dtype=np.int64)
        return Fragments(i, i, z, np.zeros((0, 3), dtype=np.float32), z, i)

    def select(self, index: np.ndarray) -> Fragments:
        return Fragments(*(getattr(self, k)[index] for k in Fragments.__annotations__))


@dataclass
class Surface:
    """The front-most fragment of every covered pixel of an (H, W) image."""

    front: Fragments  # the z-buffer winners
    depth: np.ndarray  # (H, W) float32, inf where nothing was drawn
    prim: np.ndarray  # (H, W) int, primitive index, -1 where nothing was drawn


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Project (N, 3) camera-frame points to (N, 2) pixels with intrinsics K."""
    p = points @ K.T
    return p[:, :2] / p[:, 2:3]


def _box_pixels(lo: np.ndarray, hi: np.ndarray, height: int, width: int):
    """All pixels of P boxes [lo, hi] (clipped to the image): (counts per box, rows, cols)."""
    lo = np.maximum(np.floor(lo).astype(np.int64), 0)
    hi = np.minimum(np.ceil(hi).astype(np.int64) + 1, [width, height])
    size = np.maximum(hi - lo, 0)
    rows, cols = [], []
    for (u0, v0), (w, h) in zip(lo.tolist(), size.tolist(), strict=True):
        rows.append(np.repeat(np.arange(v0, v0 + h, dtype=np.int32), w))
        cols.append(np.tile(np.arange(u0, u0 + w, dtype=np.int32), h))
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32)
    return size[:, 0] * size[:, 1], np.concatenate(rows), np.concatenate(cols)


def capsule_fragments(
    K: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    ra: np.ndarray,
    rb: np.ndarray,
    size: tuple[int, int],
) -> Fragments:
    """Fragments of P tapered capsules from a (P, 3) with radius ra (P,) to b with radius rb (P,).

    Points are in the camera frame, metres; fragment `prim` is the capsule's row.
    """
    height, width = size
    keep = np.flatnonzero((a[:, 2] > 1e-3) & (b[:, 2] > 1e-3))
    a, b, ra, rb = a[keep], b[keep], ra[keep], rb[keep]
    f = 0.5 * (K[0, 0] + K[1, 1])
    pa, pb = project(a, K), project(b, K)
    ra_px, rb_px = ra * f / a[:, 2], rb * f / b[:, 2]
    rmax = (np.maximum(ra_px, rb_px) + 1.0)[:, None]
    counts, rows, cols = _box_pixels(
        np.minimum(pa, pb) - rmax, np.maximum(pa, pb) + rmax, height, width
    )
    d = pb - pa
    inv_len2 = 1.0 / np.maximum((d * d).sum(axis=1), 1e-9)
    za, zb = a[:, 2], b[:, 2]
    # Per-capsule constants, repeated for each pixel of its box (np.repeat is far cheaper than
    # gathering with an index array): start, axis / length^2, axis, pixel radius at a and its
    # slope, axis depth at a and its slope, metric radius at a and its slope, capsule row.
    columns = [pa[:, 0], pa[:, 1], d[:, 0] * inv_len2, d[:, 1] * inv_len2, d[:, 0], d[:, 1],
               ra_px, rb_px - ra_px, za, zb - za, ra, rb - ra, keep]  # fmt: skip
    table = np.repeat(np.stack(columns, axis=1).astype(np.float32), counts, axis=0)
    pu = cols.astype(np.float32) - table[:, 0]
    pv = rows.astype(np.float32) - table[:, 1]
    # closest point on the projected axis (parameter t in [0, 1]) and the offset from it
    t = np.clip(pu * table[:, 2] + pv * table[:, 3], 0.0, 1.0)
    du, dv = pu - t * table[:, 4], pv - t * table[:, 5]
    r_px = table[:, 6] + t * table[:, 7]
    q = (du * du + dv * dv) / (r_px * r_px)
    inside = q < 1.0
    rows, cols, t, du, dv, r_px, q = (x[inside] for x in (rows, cols, t, du, dv, r_px, q))
    table = table[inside, 8:]
    bulge = np.sqrt(1.0 - q)
    depth = table[:, 0] + t * table[:, 1] - bulge * (table[:, 2] + t * table[:, 3])
    normal = np.stack([du / r_px, dv / r_px, -bulge], axis=-1)
    return Fragments(rows, cols, depth, normal, t, table[:, 4].astype(np.int64))


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull (monotone chain) of (N, 2) points."""
    pts = sorted(map(tuple, points))
    if len(pts) < 3:
        return np.asarray(pts)

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2:
                (x1, y1), (x2, y2) = out[-2], out[-1]
                if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) > 0:
                    break
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(reversed(pts))
    return np.asarray(lower[:-1] + upper[:-1])


def slab_fragments(
    K: np.ndarray, points: np.ndarray, thickness: float, size: tuple[int, int], prim: int
) -> Fragments:
    """Fragments of the camera-facing face of a thick planar polygon through points (N, 3)."""
    height, width = size
    if (points[:, 2] <= 1e-3).any():
        return Fragments.empty()
    centre = points.mean(axis=0)
    normal = np.linalg.svd(points - centre)[2][2]
    if normal @ centre > 0:  # make the normal face the camera (which sits at the origin)
        normal = -normal
    face = centre + normal * (thickness / 2)
    hull = _convex_hull(project(points, K))
    if len(hull) < 3:
        return Fragments.empty()
    _, rows, cols = _box_pixels(hull.min(axis=0)[None], hull.max(axis=0)[None], height, width)
    u, v = cols.astype(np.float32), rows.astype(np.float32)
    inside = np.ones(u.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(hull, np.roll(hull, -1, axis=0), strict=True):
        inside &= (x2 - x1) * (v - y1) - (y2 - y1) * (u - x1) >= 0
    rows, cols, u, v = rows[inside], cols[inside], u[inside], v[inside]
    # exact ray-plane intersection: ray (x, y, 1) * z with x = (u - cx) / fx, y = (v - cy) / fy
    denom = normal[0] * (u - K[0, 2]) / K[0, 0] + normal[1] * (v - K[1, 2]) / K[1, 1] + normal[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (normal @ face) / denom
    ok = np.flatnonzero(np.isfinite(depth) & (depth > 0))
    n = ok.size
    return Fragments(
        rows[ok],
        cols[ok],
        depth[ok].astype(np.float32),
        np.broadcast_to(normal.astype(np.float32), (n, 3)).copy(),
        np.zeros(n, dtype=np.float32),
        np.full(n, prim, dtype=np.int64),
    )


def resolve(fragments: Fragments, size: tuple[int, int]) -> Surface:
    """Z-buffer: keep the front-most fragment of every pixel."""
    height, width = size
    pixel = fragments.rows * width + fragments.cols
    # one sort on (pixel, depth): depth scaled into [0, 1) is added to the integer pixel index
    depth = fragments.depth.astype(np.float64)
    span = depth.max(initial=0.0) + 1.0
    order = np.argsort(pixel + depth / span)
    sorted_pixel = pixel[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = sorted_pixel[1:] != sorted_pixel[:-1]
    front = fragments.select(order[first])
    pix = sorted_pixel[first]
    depth_map = np.full(height * width, np.inf, dtype=np.float32)
    prim_map = np.full(height * width, -1, dtype=np.int64)
    depth_map[pix] = front.depth
    prim_map[pix] = front.prim
    return Surface(front, depth_map.reshape(size), prim_map.reshape(size))


def shade(
    normal: np.ndarray,
    albedo: np.ndarray,
    light_dir: np.ndarray,
    ambient: float,
    specular: float,
    shininess: float = 20.0,
) -> np.ndarray:
    """Lambert + Blinn-Phong colour (N, 3) in [0, 1] of surface points with normals (N, 3).

    `light_dir` points from the surface towards the light, in the camera frame (a light beside
    the camera has negative z, like the normals of surfaces that face the camera).
    """
    n = normal / np.maximum(np.sqrt((normal**2).sum(axis=1)), 1e-6)[:, None]
    light = (light_dir / np.linalg.norm(light_dir)).astype(np.float32)
    half = light + np.array([0.0, 0.0, -1.0], dtype=np.float32)  # light + direction to viewer
    half = half / np.linalg.norm(half)
    diffuse = np.clip(n @ light, 0.0, 1.0)
    spec = np.maximum(n @ half, 0.0) ** shininess
    lit = albedo * (ambient + (1 - ambient) * diffuse)[:, None]
    return np.minimum(lit + (specular * spec)[:, None], 1.0)


def visible_joints(
    surface: Surface, uv: np.ndarray, xyz: np.ndarray, radii: np.ndarray, slack: float = 0.5
) -> np.ndarray:
    """A joint is visible if it projects inside the image and nothing lies in front of the
    surface around it by more than `slack` times its radius."""
    h, w = surface.depth.shape
    col = np.round(uv[:, 0]).astype(int)
    row = np.round(uv[:, 1]).astype(int)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    vis = np.zeros(len(uv), dtype=bool)
    idx = np.flatnonzero(inside)
    front = surface.depth[row[idx], col[idx]]
    vis[idx] = front >= xyz[idx, 2] - radii[idx] * (1.0 + slack)
    return vis
