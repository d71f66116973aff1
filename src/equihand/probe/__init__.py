"""The part-aware probe: whole-image and keypoint-crop sets (probe-data), and linear probes and
retrieval of one frozen encoder (probe)."""
