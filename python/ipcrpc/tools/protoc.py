"""``python -m ipcrpc.tools.protoc``: runs protoc with this package's plugin.

Arguments are protoc's (``-I``, ``--python_out``, ``--ipcrpc_python_out``,
``--pyi_out``, files).  The plugin is passed as ``protoc-gen-ipcrpc_python``
and ``/usr/include`` (Debian's well-known .proto files) is added to the import
path, so this works after a plain ``pip install``:

    python -m ipcrpc.tools.protoc -I. --python_out=. --ipcrpc_python_out=. greeter.proto
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from typing import List, Optional


def run(args: List[str], protoc: Optional[str] = None) -> int:
    protoc = protoc or os.environ.get("PROTOC") or shutil.which("protoc")
    if not protoc:
        print("ipcrpc.tools.protoc: protoc not found (apt-get install protobuf-compiler, or set PROTOC)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ipcrpc-protoc-") as tmp:
        plugin = os.path.join(tmp, "protoc-gen-ipcrpc_python")
        with open(plugin, "w") as f:
            f.write(f'#!/bin/sh\nexec "{sys.executable}" -m ipcrpc.tools.protoc_plugin "$@"\n')
        os.chmod(plugin, stat.S_IRWXU)
        extra = [f"--plugin=protoc-gen-ipcrpc_python={plugin}"]
        if os.path.isdir("/usr/include/google/protobuf"):
            extra.append("-I/usr/include")
        return subprocess.call([protoc] + args + extra)


def main() -> int:
    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
