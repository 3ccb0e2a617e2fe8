"""CI's integrity check of a state directory: ledger chain, signed checkpoints, evidence blobs
and files, and the projection against a replay of the ledger.

    python scripts/integrity.py --state-dir state [--json]

Exit 0 when everything holds, 1 on any mismatch, 2 when the state cannot be read.
"""

from __future__ import annotations

import sys

from server.cli import main

if __name__ == "__main__":
    sys.exit(main(["verify", *sys.argv[1:]]))
