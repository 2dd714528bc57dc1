"""Compile contracts/*.sol with npm's solcjs and write contracts/build/<Name>.json.

Usage: ``python scripts/compile_contracts.py [--check]``. ``--check`` recompiles and exits 1
if the committed artifacts differ from what the sources produce (the unit test does the same).
The logic lives in ``harness.node.compile`` so the test and this script share it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.node.compile import main  # after the path set-up above

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
