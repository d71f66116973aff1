"""Scoring: the steps that apply FreiHAND's metrics (equihand.metrics): evaluate a checkpoint,
score a pred.json, the reference a model must beat."""
