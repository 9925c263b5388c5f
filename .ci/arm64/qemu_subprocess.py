"""pytest plugin for the emulated run: re-enter qemu when a test starts ``sys.executable``.

qemu-user without binfmt_misc cannot exec an aarch64 binary from inside the emulated process,
but it can exec the (x86-64) qemu itself, so ``[sys.executable, ...]`` becomes
``[qemu-aarch64-static, -cpu, cortex-a72, -L, SYSROOT, sys.executable, ...]``.
check.sh passes that prefix as JSON in EDGEFER_ARM64_QEMU_PREFIX.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

_PREFIX = json.loads(os.environ.get("EDGEFER_ARM64_QEMU_PREFIX", "[]"))
_orig_init = subprocess.Popen.__init__


def _init(self, args, *a, **kw):  # the signature mirrors Popen.__init__
    if _PREFIX and isinstance(args, (list, tuple)) and args and str(args[0]) == sys.executable:
        args = [*_PREFIX, *map(str, args)]
    _orig_init(self, args, *a, **kw)


subprocess.Popen.__init__ = _init
