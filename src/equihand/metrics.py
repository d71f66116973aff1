"""FreiHAND's official keypoint metrics, vectorised over samples with numpy.

Follows the definitions of FreiHAND's ``eval.py`` / ``utils/eval_util.py`` (Zimmermann et al.,
ICCV 2019; docs/evaluation.md):

- per-joint Euclidean error in metres; EPE = mean over joints of the per-joint mean over samples
  (every joint counts as visible);
- PCK per joint at ``thresholds = linspace(0, 0.05, 100)`` metres with ``pck = mean(err <= t)``;
  AUC = ``trapezoid(pck, t) / trapezoid(1, t)`` per joint, averaged over joints;
- PA (Procrustes-aligned) measures: the same after a per-sample similarity alignment of the
  prediction onto the ground truth (translation, uniform scale, orthogonal matrix). As in the
  official code the orthogonal matrix is **not** restricted to rotations: a mirrored prediction
  is aligned perfectly (PA-EPE ~ 0).

Shapes and units: 3D points are arrays ``(N, J, 3)`` in metres (N samples, J = 21 joints in
FreiHAND order); 2D points ``(N, J, 2)`` in pixels. Everything is computed in float64 and in
metres; the report of `evaluate_keypoints` also gives means in centimetres (``*_cm``, x100) as the
FreiHAND papers and README do.

Note on the official ``+ 1e-8``: the official alignment adds 1e-8 to both Frobenius norms before
dividing (to survive an all-zero prediction). `procrustes_align` does the same by default
(``eps=OFFICIAL_EPS``); it shrinks the aligned prediction by a relative ~2e-8 / ||pred_c||, so a
prediction that is an exact similarity transform of the truth gets a PA error of at most
2e-8 / (its scale relative to the truth) metres, not exactly 0. Pass ``eps=0`` for the exact
least-squares alignment (an all-zero prediction then gives NaN).
"""

from __future__ import annotations

import numpy as np

OFFICIAL_EPS = 1e-8  # added to both Frobenius norms in FreiHAND's align_w_scale
PCK_THRESHOLDS_M = np.linspace(0.0, 0.05, 100)  # official 3D PCK grid: 0-50 mm, 100 steps
PCK_THRESHOLDS_PX = np.linspace(0.0, 30.0, 100)  # 2D PCK grid of this project: 0-30 px
ROOT_JOINT = 0  # the wrist, for root-relative errors
CM_PER_M = 100.0


def _points(x, name: str, dims: tuple[int, ...] = (2, 3)) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 3 or a.shape[2] not in dims:
        raise ValueError(
            f"{name}: expected shape (N, J, {'|'.join(map(str, dims))}), got {a.shape}"
        )
    return a


def _pair(pred, gt, dims: tuple[int, ...] = (2, 3)) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _points(pred, "pred", dims), _points(gt, "gt", dims)
    if pred.shape != gt.shape:
        raise ValueError(f"pred has shape {pred.shape} but gt has shape {gt.shape}")
    return pred, gt


def procrustes_align(pred, gt, eps: float = OFFICIAL_EPS) -> np.ndarray:
    """Align each predicted sample onto its ground truth as FreiHAND's ``align_w_scale(gt, pred)``.

    pred, gt: ``(N, J, D)`` (D = 3, or 2). Returns the aligned prediction ``(N, J, D)`` in the
    units of `gt`. Per sample: centre both point sets; divide each by its Frobenius norm (+ eps);
    ``R, s = scipy.linalg.orthogonal_procrustes(gt_n, pred_n)``, i.e. ``R = U @ Vt`` and
    ``s = sum(S)`` for ``U, S, Vt = svd(gt_n.T @ pred_n)``, the orthogonal R minimising
    ``||gt_n @ R - pred_n||``; then ``aligned = (pred_n @ R.T) * s * (||gt_c|| + eps) + mean(gt)``.
    No reflection correction: det(R) may be -1, exactly as in the official code. All samples are
    solved at once with a batched SVD.
    """
    pred, gt = _pair(pred, gt)
    t_gt = gt.mean(axis=1, keepdims=True)
    gt_c = gt - t_gt
    pred_c = pred - pred.mean(axis=1, keepdims=True)
    s_gt = np.linalg.norm(gt_c, axis=(1, 2), keepdims=True) + eps
    s_pred = np.linalg.norm(pred_c, axis=(1, 2), keepdims=True) + eps
    gt_n = gt_c / s_gt
    pred_n = pred_c / s_pred
    u, w, vt = np.linalg.svd(np.matmul(gt_n.transpose(0, 2, 1), pred_n))  # (N, D, D)
    r = np.matmul(u, vt)
    s = w.sum(axis=1)[:, None, None]
    return np.matmul(pred_n, r.transpose(0, 2, 1)) * s * s_gt + t_gt


def keypoint_errors(pred, gt) -> np.ndarray:
    """Euclidean distance per sample and joint: ``(N, J)``, in the units of the inputs."""
    pred, gt = _pair(pred, gt)
    return np.sqrt(np.sum((pred - gt) ** 2, axis=2))


def aligned_errors(pred, gt) -> np.ndarray:
    """`keypoint_errors` after Procrustes-aligning each prediction to its ground truth: ``(N, J)``
    (the errors behind PA-EPE)."""
    return keypoint_errors(procrustes_align(pred, gt), gt)


def epe_cm(errors) -> float:
    """The mean of ``(N, J)`` errors in metres over every sample and joint, in cm: EPE of
    `keypoint_errors`, PA-EPE of `aligned_errors` (training's validation and the constant-pose
    reference; `evaluate_keypoints` averages per joint first, as FreiHAND's code does)."""
    return float(np.mean(errors)) * CM_PER_M


def pck_curve(errors, thresholds=PCK_THRESHOLDS_M) -> np.ndarray:
    """Per-joint PCK: ``pck[j, k] = mean over samples of (errors[:, j] <= thresholds[k])``.

    errors: ``(N, J)``; thresholds: ``(T,)`` in the same units. Returns ``(J, T)``. Counts by
    sorting each joint's errors once (no (N, J, T) boolean array; loops only over joints).
    """
    errors = np.asarray(errors, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if errors.ndim != 2 or errors.shape[0] == 0:
        raise ValueError(f"errors: expected shape (N, J) with N >= 1, got {errors.shape}")
    ordered = np.sort(errors, axis=0)  # NaN sorts last and never counts as within a threshold
    counts = np.stack([np.searchsorted(col, thresholds, side="right") for col in ordered.T])
    return counts / errors.shape[0]


def auc(pck, thresholds=PCK_THRESHOLDS_M) -> float:
    """Normalised area under PCK curves: ``trapezoid(pck, t) / trapezoid(1, t)`` per curve, then
    the mean over curves (joints). pck: ``(J, T)`` or ``(T,)``. Returns a float in [0, 1]."""
    pck = np.atleast_2d(np.asarray(pck, dtype=np.float64))
    thresholds = np.asarray(thresholds, dtype=np.float64)
    norm = np.trapezoid(np.ones_like(thresholds), thresholds)
    return float(np.mean(np.trapezoid(pck, thresholds, axis=1) / norm))


def _summary(errors: np.ndarray, thresholds: np.ndarray) -> dict:
    per_joint = errors.mean(axis=0)
    curves = pck_curve(errors, thresholds)
    return {
        "mean": float(per_joint.mean()),
        "median": float(np.median(errors, axis=0).mean()),  # official "epe_median_all"
        "per_joint": per_joint,
        "auc": auc(curves, thresholds),
        "pck": curves.mean(axis=0),  # official pck_curve_all: mean over joints
    }


def _floats(a: np.ndarray, scale: float = 1.0) -> list[float]:
    return [float(v) for v in np.asarray(a) * scale]


def evaluate_keypoints(pred, gt, uv_pred=None, uv_gt=None, errors=None) -> dict:
    """All keypoint metrics for predictions ``pred`` vs ground truth ``gt``, ``(N, 21, 3)`` metres.

    Optional ``uv_pred``, ``uv_gt``: ``(N, 21, 2)`` pixels, for 2D EPE and PCK/AUC over 0-30 px.
    Optional ``errors``: ``(keypoint_errors(pred, gt), aligned_errors(pred, gt))`` when the caller
    has them already (they are not recomputed).
    Returns a JSON-serialisable dict of plain floats and lists:

    - ``n_samples``, ``n_joints``
    - ``epe``, ``epe_cm``, ``epe_median_cm``: EPE in metres / cm, and the official median variant
      (mean over joints of the per-joint median) in cm
    - ``pa_epe``, ``pa_epe_cm``, ``pa_epe_median_cm``: the same after Procrustes alignment
    - ``rr_epe``, ``rr_epe_cm``: root-relative EPE (both sets translated so that joint 0 is at the
      origin; not an official FreiHAND measure)
    - ``auc``, ``pa_auc``: official AUC of the PCK over 0-50 mm (unitless, in [0, 1])
    - ``per_joint_epe_cm``, ``per_joint_pa_epe_cm``: 21 per-joint mean errors in cm
    - ``pck``: ``{"thresholds_m": 100 values, "pck": ..., "pa_pck": ...}`` curves averaged over
      joints (fractions in [0, 1])
    - with 2D: ``epe_2d_px``, ``auc_2d`` and ``pck_2d``: ``{"thresholds_px": ..., "pck": ...}``
    """
    pred, gt = _pair(pred, gt, dims=(3,))
    if pred.shape[0] == 0:
        raise ValueError("no samples to evaluate")
    plain, aligned = errors if errors is not None else (None, None)
    plain = keypoint_errors(pred, gt) if plain is None else np.asarray(plain)
    aligned = aligned_errors(pred, gt) if aligned is None else np.asarray(aligned)
    if plain.shape != pred.shape[:2] or aligned.shape != pred.shape[:2]:
        raise ValueError(f"errors: expected two {pred.shape[:2]} arrays")
    err = _summary(plain, PCK_THRESHOLDS_M)
    pa = _summary(aligned, PCK_THRESHOLDS_M)
    root = slice(ROOT_JOINT, ROOT_JOINT + 1)
    rr = keypoint_errors(pred - pred[:, root], gt - gt[:, root]).mean(axis=0).mean()
    out = {
        "n_samples": int(pred.shape[0]),
        "n_joints": int(pred.shape[1]),
        "epe": err["mean"],
        "epe_cm": err["mean"] * CM_PER_M,
        "epe_median_cm": err["median"] * CM_PER_M,
        "pa_epe": pa["mean"],
        "pa_epe_cm": pa["mean"] * CM_PER_M,
        "pa_epe_median_cm": pa["median"] * CM_PER_M,
        "rr_epe": float(rr),
        "rr_epe_cm": float(rr) * CM_PER_M,
        "auc": err["auc"],
        "pa_auc": pa["auc"],
        "per_joint_epe_cm": _floats(err["per_joint"], CM_PER_M),
        "per_joint_pa_epe_cm": _floats(pa["per_joint"], CM_PER_M),
        "pck": {
            "thresholds_m": _floats(PCK_THRESHOLDS_M),
            "pck": _floats(err["pck"]),
            "pa_pck": _floats(pa["pck"]),
        },
    }
    if (uv_pred is None) != (uv_gt is None):
        raise ValueError("give both uv_pred and uv_gt, or neither")
    if uv_pred is not None:
        uv_pred, uv_gt = _pair(uv_pred, uv_gt, dims=(2,))
        if uv_pred.shape[:2] != pred.shape[:2]:
            raise ValueError(f"uv has shape {uv_pred.shape}; expected {(*pred.shape[:2], 2)}")
        px = _summary(keypoint_errors(uv_pred, uv_gt), PCK_THRESHOLDS_PX)
        out["epe_2d_px"] = px["mean"]
        out["auc_2d"] = px["auc"]
        out["pck_2d"] = {"thresholds_px": _floats(PCK_THRESHOLDS_PX), "pck": _floats(px["pck"])}
    return out


def per_sample_loop_reference(pred, gt, eps: float = OFFICIAL_EPS) -> dict:
    """EPE and PA-EPE with an explicit Python loop over samples (one 3x3 SVD each).

    A straightforward transcription of the official per-sample evaluation, kept as the reference
    that `procrustes_align` / `evaluate_keypoints` must agree with and as the baseline of
    bench/metrics_speed.py. Returns ``errors`` and ``pa_errors`` ``(N, J)`` and the means
    ``epe`` and ``pa_epe``, all in metres.
    """
    pred, gt = _pair(pred, gt, dims=(3,))
    n, j, _ = pred.shape
    errors = np.empty((n, j))
    pa_errors = np.empty((n, j))
    for i in range(n):
        p, g = pred[i], gt[i]
        t_gt = g.mean(axis=0)
        g_c = g - t_gt
        p_c = p - p.mean(axis=0)
        s_gt = np.linalg.norm(g_c) + eps
        g_c = g_c / s_gt
        p_c = p_c / (np.linalg.norm(p_c) + eps)
        u, w, vt = np.linalg.svd(g_c.T @ p_c)
        aligned = (p_c @ (u @ vt).T) * w.sum() * s_gt + t_gt
        errors[i] = np.linalg.norm(p - g, axis=1)
        pa_errors[i] = np.linalg.norm(aligned - g, axis=1)
    return {
        "errors": errors,
        "pa_errors": pa_errors,
        "epe": float(errors.mean(axis=0).mean()),
        "pa_epe": float(pa_errors.mean(axis=0).mean()),
    }
