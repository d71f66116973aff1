"""Scoring: FreiHAND's metrics, and the steps that apply them (evaluate a checkpoint, score a
pred.json, the reference a model must beat)."""
