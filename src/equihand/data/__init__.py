"""Data: the synthetic hands (`equihand synth`) or FreiHAND (`equihand download`) in the FreiHAND
layout, and the prepared cache every training step reads (`equihand prepare`)."""
