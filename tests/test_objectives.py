"""Objectives against brute-force references and exact geometric round trips."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from equihand import vocabulary
from equihand.config import load_config, load_schema
from equihand.methods import objectives
from equihand.methods.objectives import (
    equivariant,
    equivariant_projection,
    get_objective,
    invariant,
    nt_xent,
    undo_geometry,
)

IMAGE_SIZE = 128
ALL_OBJECTIVES = vocabulary.study_objectives()
OBJECTIVES = {name: get_objective(name) for name in vocabulary.pretraining_objectives()}


def brute_force_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """NT-Xent one anchor at a time with plain Python floats."""
    rows = [[float(v) for v in row] for row in torch.cat([z1, z2]).double()]
    rows = [[v / math.sqrt(sum(x * x for x in row)) for v in row] for row in rows]
    n, b = len(rows), len(rows) // 2

    def sim(i: int, k: int) -> float:
        return sum(a * c for a, c in zip(rows[i], rows[k], strict=True)) / temperature

    total = 0.0
    for i in range(n):
        positive = (i + b) % n
        denominator = sum(math.exp(sim(i, k)) for k in range(n) if k != i)
        total += -math.log(math.exp(sim(i, positive)) / denominator)
    return total / n


def forward_geometry(points: torch.Tensor, angle: torch.Tensor, shift_frac: torch.Tensor):
    """The transform `undo_geometry` models, written out per coordinate: rotate (x, y) by +angle
    about the mean, then shift by shift_frac times the rotated points' per-axis extent."""
    mean = points.mean(dim=1, keepdim=True)
    x, y = (points - mean).unbind(-1)
    c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    rotated = torch.stack([c * x - s * y, s * x + c * y], -1) + mean
    extent = rotated.amax(dim=1, keepdim=True) - rotated.amin(dim=1, keepdim=True)
    return rotated + shift_frac[:, None, :] * extent


def geometry(angle, shift_frac) -> SimpleNamespace:
    """A view's augmentation record: radians and pixels, as the augment layer reports them."""
    angle = torch.as_tensor(angle, dtype=torch.float64)
    shift = torch.as_tensor(shift_frac, dtype=torch.float64) * IMAGE_SIZE
    return SimpleNamespace(angle=angle, shift=shift)


def zero_geometry(b: int) -> SimpleNamespace:
    return geometry(torch.zeros(b), torch.zeros(b, 2))


# --- nt_xent ---------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 2, 3, 8])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("identical", [False, True])
def test_nt_xent_matches_brute_force(batch, temperature, identical):
    gen = torch.Generator().manual_seed(batch * 100 + int(temperature * 10))
    # Unnormalised, differently scaled rows: the function must normalise them itself.
    z1 = torch.randn(batch, 6, generator=gen) * torch.rand(batch, 1, generator=gen).add(0.2) * 5
    z2 = z1.clone() if identical else torch.randn(batch, 6, generator=gen)
    loss = nt_xent(z1, z2, temperature)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(brute_force_nt_xent(z1, z2, temperature), abs=1e-5)


def test_nt_xent_is_symmetric_in_views_and_zero_for_one_pair():
    z1, z2 = torch.randn(5, 8), torch.randn(5, 8)
    assert nt_xent(z1, z2, 0.5).item() == pytest.approx(nt_xent(z2, z1, 0.5).item(), abs=1e-6)
    assert nt_xent(z1[:1], z2[:1], 0.5).item() == pytest.approx(0.0, abs=1e-7)


def test_nt_xent_gradients_flow_to_both_views():
    z1 = torch.randn(4, 8, requires_grad=True)
    z2 = torch.randn(4, 8, requires_grad=True)
    nt_xent(z1, z2, 0.5).backward()
    for grad in (z1.grad, z2.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_nt_xent_rejects_bad_shapes_and_temperature():
    with pytest.raises(ValueError, match="equal shape"):
        nt_xent(torch.randn(4, 8), torch.randn(3, 8), 0.5)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.randn(4, 8), torch.randn(4, 8), 0.0)


# --- undo_geometry ---------------------------------------------------------------------------


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize(
    "shift_frac", [(0.0, 0.0), (0.1, -0.05), (-0.12, 0.12), (0.3, 0.25)], ids=str
)
def test_undo_geometry_inverts_the_forward_transform(sign, shift_frac):
    gen = torch.Generator().manual_seed(7)
    points = torch.randn(4, 64, 2, generator=gen, dtype=torch.float64) + 0.5
    angle = sign * torch.tensor([0.3, 0.7, 1.5, 2.9], dtype=torch.float64)
    shift = torch.tensor(shift_frac, dtype=torch.float64).expand(4, 2)
    moved = forward_geometry(points, angle, shift)
    restored = undo_geometry(moved, angle, shift)
    torch.testing.assert_close(restored, points, atol=1e-5, rtol=0)
    # The transform really moved the points, so the round trip is not trivially satisfied.
    assert (moved - points).abs().max() > 0.1


def test_undo_geometry_rotates_by_minus_angle_about_the_mean():
    # Two points about a mean at (1, 1); undoing a +90 degree rotation turns (x, y) -> (y, -x).
    points = torch.tensor([[[2.0, 1.0], [0.0, 1.0]]])
    out = undo_geometry(points, torch.tensor([math.pi / 2]), torch.zeros(1, 2))
    torch.testing.assert_close(out, torch.tensor([[[1.0, 0.0], [1.0, 2.0]]]), atol=1e-6, rtol=0)


def test_undo_geometry_translates_in_units_of_the_extent():
    # Extent is (2, 4): a shift of (0.5, -0.25) of the image moves the points by (-1, +1).
    points = torch.tensor([[[0.0, 0.0], [2.0, 4.0], [1.0, 1.0]]])
    out = undo_geometry(points, torch.zeros(1), torch.tensor([[0.5, -0.25]]))
    torch.testing.assert_close(out, points + torch.tensor([-1.0, 1.0]), atol=1e-6, rtol=0)


def test_undo_geometry_is_not_the_identity_for_a_nonzero_angle():
    points = torch.randn(3, 64, 2)
    out = undo_geometry(points, torch.full((3,), 0.4), torch.zeros(3, 2))
    assert (out - points).abs().max() > 0.05
    # Zero geometry, by contrast, changes nothing.
    same = undo_geometry(points, torch.zeros(3), torch.zeros(3, 2))
    torch.testing.assert_close(same, points, atol=1e-6, rtol=0)


def test_undo_geometry_treats_extent_and_mean_as_constants():
    # With extent and mean detached the map is linear in the points: the gradient of
    # sum(w * out) is w R(-a) (rows), whatever the shift.
    points = torch.randn(2, 16, 2, dtype=torch.float64, requires_grad=True)
    angle = torch.tensor([0.6, -1.1], dtype=torch.float64)
    shift = torch.tensor([[0.2, -0.1], [-0.3, 0.15]], dtype=torch.float64)
    weights = torch.randn(2, 16, 2, dtype=torch.float64)
    (undo_geometry(points, angle, shift) * weights).sum().backward()
    c, s = torch.cos(-angle), torch.sin(-angle)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    torch.testing.assert_close(points.grad, weights @ rot, atol=1e-10, rtol=0)


def test_undo_geometry_rejects_mismatched_geometry():
    with pytest.raises(ValueError, match="angle"):
        undo_geometry(torch.randn(3, 8, 2), torch.zeros(3, 1), torch.zeros(3, 2))


# --- equivariant objective -------------------------------------------------------------------


@pytest.mark.parametrize("identical", [False, True])
def test_equivariant_equals_invariant_without_geometry(identical):
    z1 = torch.randn(6, 128)
    z2 = z1.clone() if identical else torch.randn(6, 128)
    geom = zero_geometry(6)
    kwargs = {"temperature": 0.5, "image_size": IMAGE_SIZE}
    torch.testing.assert_close(
        equivariant(z1, z2, geom, geom, **kwargs), invariant(z1, z2, geom, geom, **kwargs)
    )


def test_equivariant_positives_align_after_undo_while_invariant_ones_do_not():
    gen = torch.Generator().manual_seed(3)
    b = 5
    points = torch.randn(b, 64, 2, generator=gen, dtype=torch.float64)
    g1 = geometry(torch.rand(b, generator=gen) * 1.6 - 0.8, torch.rand(b, 2, generator=gen) * 0.3)
    g2 = geometry(torch.rand(b, generator=gen) * 1.6 - 0.8, torch.rand(b, 2, generator=gen) * -0.3)
    # What each view's projection head would output if it were exactly equivariant: the same
    # points moved by that view's geometry (at any positive scale).
    z1 = forward_geometry(points, g1.angle, g1.shift / IMAGE_SIZE).reshape(b, -1) * 3.0
    z2 = forward_geometry(points, g2.angle, g2.shift / IMAGE_SIZE).reshape(b, -1) * 0.5

    p1 = equivariant_projection(z1, g1.angle, g1.shift / IMAGE_SIZE)
    p2 = equivariant_projection(z2, g2.angle, g2.shift / IMAGE_SIZE)
    torch.testing.assert_close((p1 * p2).sum(1), torch.ones(b, dtype=torch.float64))
    assert (F.cosine_similarity(z1, z2) < 0.99).all()

    kwargs = {"temperature": 0.5, "image_size": IMAGE_SIZE}
    flat = points.reshape(b, -1)
    # Both views undo to the same points, so the loss is that of two identical views.
    torch.testing.assert_close(equivariant(z1, z2, g1, g2, **kwargs), nt_xent(flat, flat, 0.5))
    assert equivariant(z1, z2, g1, g2, **kwargs) < invariant(z1, z2, g1, g2, **kwargs)


# --- registry and training sanity ------------------------------------------------------------


def test_registry_lists_the_objectives():
    assert get_objective("invariant").loss is invariant
    assert get_objective("equivariant").loss is equivariant
    assert ALL_OBJECTIVES == (
        "none",
        "invariant",
        "equivariant",
        "mim",
        "invariant+mim",
        "equivariant+mim",
    )
    assert set(OBJECTIVES) == set(ALL_OBJECTIVES) - {"none"}
    # what each objective asks the pretraining step for
    needs = {name: (spec.contrastive, spec.masked) for name, spec in OBJECTIVES.items()}
    assert needs == {
        "invariant": (True, False),
        "equivariant": (True, False),
        "mim": (False, True),
        "invariant+mim": (True, True),
        "equivariant+mim": (True, True),
    }


def test_config_schema_allows_exactly_the_study_arms():
    schema = load_schema()
    objective = {"$ref": "#/$defs/objective"}
    assert schema["properties"]["pretrain"]["properties"]["objective"].items() >= objective.items()
    assert schema["properties"]["study"]["properties"]["objectives"]["items"] == objective
    assert tuple(schema["$defs"]["objective"]["enum"]) == ALL_OBJECTIVES


def test_a_registered_objective_is_one_entry_away_from_the_study(monkeypatch):
    """One loss function and one registry line: the schema, the CLI's choices and the loss
    lookup all take the new objective from the vocabulary."""
    monkeypatch.setattr(vocabulary, "OBJECTIVES", dict(vocabulary.OBJECTIVES))
    with pytest.raises(Exception, match="toy"):
        load_config(overrides=["study.objectives=[none, toy]"])
    vocabulary.register_objective("toy", "equihand.methods.objectives:invariant")
    config = load_config(overrides=["study.objectives=[none, toy]", "pretrain.objective=toy"])
    assert config["study"]["objectives"] == ["none", "toy"]
    assert vocabulary.study_objectives()[-1] == "toy"
    spec = get_objective("toy")
    assert spec.loss is invariant and spec.contrastive and not spec.masked


@pytest.mark.parametrize(
    "name, loss",
    [("none", "m:f"), ("invariant", "m:f"), ("Toy", "m:f"), ("a_b", "m:f"), ("toy", "m.f")],
)
def test_registering_a_taken_or_unsafe_name_is_refused(name, loss):
    with pytest.raises(ValueError):
        vocabulary.register_objective(name, loss)


@pytest.mark.parametrize("name", ["jigsaw", "none", "Equivariant"])
def test_unknown_objective_names_itself_and_the_allowed_ones(name):
    with pytest.raises(ValueError) as excinfo:
        get_objective(name)
    message = str(excinfo.value)
    assert repr(name) in message
    for allowed in OBJECTIVES:
        assert allowed in message


@pytest.mark.parametrize("name", sorted(n for n, spec in OBJECTIVES.items() if not spec.masked))
def test_objective_decreases_under_sgd(name):
    torch.manual_seed(0)
    objective = objectives.get_objective(name).loss
    b = 8
    z1 = torch.nn.Parameter(torch.randn(b, 16))
    z2 = torch.nn.Parameter(torch.randn(b, 16))
    g1 = geometry(torch.rand(b) - 0.5, torch.rand(b, 2) * 0.2)
    g2 = geometry(torch.rand(b) - 0.5, torch.rand(b, 2) * -0.2)
    optimizer = torch.optim.SGD([z1, z2], lr=0.5)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = objective(z1, z2, g1, g2, temperature=0.5, image_size=IMAGE_SIZE)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1
