"""What is learned and how: encoders and heads (models), augmentation, the pretraining objectives
(objectives, mim) and the 2.5D pose representation (pose)."""
