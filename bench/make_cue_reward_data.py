#!/usr/bin/env python3
"""make_cue_reward_data.py - random inputs and output gradients shaped like one cue-reward episode.

Writes x.st ([T, B, 27] inputs) and dy.st (gradients for logits, value and DAout) into OUT_DIR, for
timing `dopa grad` at the paper's settings (T=120 steps, B=30). Usage: make_cue_reward_data.py OUT_DIR
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import numpy as np  # noqa: E402
import safetensors_np as st  # noqa: E402

T, B, I = 120, 30, 27
out = sys.argv[1] if len(sys.argv) > 1 else "."
rng = np.random.default_rng(0)
st.save(os.path.join(out, "x.st"), {"x": rng.uniform(-1, 1, (T, B, I)).astype(np.float32)})
st.save(os.path.join(out, "dy.st"), {"logits": rng.normal(size=(T, B, 2)).astype(np.float32),
                                     "value": rng.normal(size=(T, B, 1)).astype(np.float32),
                                     "DAout": rng.normal(size=(T, B, 1)).astype(np.float32)})
