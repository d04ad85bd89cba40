"""readme_example.py - the README's PyTorch training loop around a dopa network runs as printed.

Extracts the first ```python block under "## dopa from Python" from README.md, runs it from the
source folder (with the build's package first on sys.path, as the block's own sys.path line does for
the default build folder) and checks that it trained: the loss of its last iteration is below the
first one's. Exits non-zero otherwise.
"""
import os
import re
import sys

root = os.environ["DOPA_SOURCE_DIR"]
sys.path.insert(0, os.environ["DOPA_PYTHON_PATH"])
try:
    import torch  # noqa: F401
except ImportError:
    print("[SKIP] torch not installed")
    sys.exit(0)

readme = open(os.path.join(root, "README.md")).read()
section = readme[readme.index("## dopa from Python"):]
block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
# Record the loss of every iteration (the block's loop body ends with the optimizer step).
instrumented = block.replace("opt.step()", "opt.step(); losses.append(float(loss))", 1)
assert instrumented != block, "the README's loop no longer calls opt.step()"
os.chdir(root)
scope = {"losses": []}
exec(compile(instrumented, "README.md (dopa from Python)", "exec"), scope)
losses = scope["losses"]
print(f"README example: {len(losses)} iterations, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
if len(losses) < 10 or not losses[-1] < 0.5 * losses[0]:
    print("FAIL: the README's training loop did not train")
    sys.exit(1)
print("PASS readme_example")
