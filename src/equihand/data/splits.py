"""The split policy of the prepared cache: training rows are dealt to val, labeled and unlabeled
by group (hand identity, else annotation), so no group straddles two splits; test = the
evaluation rows."""

from __future__ import annotations

import numpy as np

from equihand.errors import DataError


def make_splits(groups: np.ndarray, n_test_start: int, n_total: int, cfg: dict) -> dict:
    """Deal training rows to val / labeled / unlabeled by group; test = the evaluation rows.

    `groups` holds one group key per training row (rows 0..len(groups)-1); the evaluation rows
    are [n_test_start, n_total).
    """
    keys = np.unique(groups)
    n_groups = len(keys)
    if n_groups < 2:
        raise DataError(
            f"the training split has {n_groups} group(s) (hand identities or samples); "
            "expected at least 2 to hold out a validation split"
        )
    order = np.random.default_rng(cfg["seed"]).permutation(n_groups)
    n_val = min(max(1, round(cfg["val_fraction"] * n_groups)), n_groups - 1)
    n_lab = min(max(1, round(cfg["labeled_fraction"] * n_groups)), n_groups - n_val)
    val_keys = keys[order[:n_val]]
    lab_keys = keys[order[n_val : n_val + n_lab]]
    unl_keys = keys[order[n_val + n_lab :]]
    rows = np.arange(len(groups), dtype=np.int64)
    val = rows[np.isin(groups, val_keys)]
    labeled = rows[np.isin(groups, lab_keys)]
    unlabeled = rows[np.isin(groups, unl_keys)]
    pool = (
        np.sort(np.concatenate([unlabeled, labeled])) if cfg["pool_includes_labeled"] else unlabeled
    )
    test = np.arange(n_test_start, n_total, dtype=np.int64)
    return {"pool": pool, "labeled": labeled, "val": val, "test": test}
