"""Markdown summary of one training run (command, data, recipe, time) from its run.json and history.csv.

The summary itself is edgefer.export.readme_blocks.run_summary, which `edgefer ship` writes into
models/README.md; this prints it for one run folder. Usage: python scripts/run_summary.py RUN_FOLDER
"""

from __future__ import annotations

import sys

from edgefer.export.readme_blocks import main

if __name__ == "__main__":
    sys.exit(main(["summary", *sys.argv[1:]]))
