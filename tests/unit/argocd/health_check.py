"""The Argo CD health check in docs/argocd, run through a real Lua interpreter.

The object reaches Lua as a table constructor written from its JSON, so no Lua JSON
library is needed. The same script is embedded in docs/argocd/argocd-cm.yaml;
`python -m tests.unit.argocd.health_check > docs/argocd/argocd-cm.yaml` writes that
file again after the script changes.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA = "lua5.4"
ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "docs" / "argocd" / "health.lua"
CONFIGMAP = ROOT / "docs" / "argocd" / "argocd-cm.yaml"
HARNESS = Path(__file__).with_name("harness.lua")
KEY = "resource.customizations.health.pulsebase.io_PulseBase"
# Argo CD turns any other value into Unknown with a message of its own.
STATUSES = frozenset({"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"})
MISSING_LUA = f"{LUA} is not installed: run hack/install-test-deps.sh (as root)"


@dataclass(frozen=True)
class Health:
    status: str
    message: str


def interpreter() -> str | None:
    return shutil.which(LUA)


def assess(obj: Mapping[str, Any], *, script: Path = SCRIPT) -> Health:
    """What Argo CD would show for `obj`, a PulseBase as the API server returns it."""
    lua = interpreter()
    assert lua is not None, MISSING_LUA
    done = subprocess.run(
        [lua, str(HARNESS), str(script)],
        input="return " + literal(obj),
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    assert done.returncode == 0, f"the health script failed:\n{done.stderr}"
    status, _, message = done.stdout.partition("\n")
    assert status in STATUSES, f"Argo CD would show Unknown for status {status!r}"
    return Health(status=status, message=message)


def literal(value: Any) -> str:
    """`value` (decoded JSON) as a Lua expression.

    JSON numbers reach Argo CD's Lua as floats that print without a fraction; integers
    print the same way in Lua 5.4, so integers stay integers here."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        fields = (f"[{_string(k)}] = {literal(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(fields) + "}"
    if isinstance(value, Sequence):
        return "{" + ", ".join(literal(v) for v in value) + "}"
    raise TypeError(f"no JSON value: {value!r}")


def _string(text: str) -> str:
    # Three-digit decimal escapes cannot run into a digit that follows them.
    safe = (chr(b) if 0x20 <= b < 0x7F and b not in b'"\\' else f"\\{b:03d}" for b in text.encode())
    return '"' + "".join(safe) + '"'


def configmap(script: str) -> str:
    """docs/argocd/argocd-cm.yaml: the argocd-cm keys that install `script`."""
    body = "".join(f"    {line}" if line.strip() else "\n" for line in script.splitlines(True))
    return (
        "# Generated from docs/argocd/health.lua by\n"
        "# `python -m tests.unit.argocd.health_check`; edit the script, not this file.\n"
        "# Merge it into Argo CD's settings (docs/argocd/README.md):\n"
        "#   kubectl -n argocd patch configmap argocd-cm --patch-file docs/argocd/argocd-cm.yaml\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: argocd-cm\n"
        "  namespace: argocd\n"
        "  labels:\n"
        "    app.kubernetes.io/name: argocd-cm\n"
        "    app.kubernetes.io/part-of: argocd\n"
        "data:\n"
        f"  {KEY}: |\n"
        f"{body}"
    )


if __name__ == "__main__":
    print(configmap(SCRIPT.read_text()), end="")
