"""Which children to apply and which to prune, decided by comparing before writing.

A pass writes nothing when nothing changed. An object is applied when the hash of what
we would send differs from the hash we stamped last time (the spec changed), or when the
live object no longer covers what we want (someone edited or removed our fields). An
object is pruned when it carries our stamp and our owner reference but is no longer
desired; anything we did not stamp is never touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from pulsebase_operator.api.quantity import parse_quantity
from pulsebase_operator.render.labels import APPLIED_HASH

Object = dict[str, Any]
Key = tuple[str, str]  # kind, name


@dataclass(frozen=True)
class Replacement:
    """A live object to delete so that the next pass creates it anew.

    Jobs cannot change their template (their scripts are safe to run twice, so the new
    one just runs); StatefulSets cannot change their volume claim templates, so a grown
    volume means: resize the claims, delete the StatefulSet but orphan its pods, and
    let the new StatefulSet adopt them. No pod restarts.
    """

    live: Object
    propagation: str  # Background or Orphan
    grow_claims_to: str | None = None  # the new size, for StatefulSets


def _replacement(current: Object, desired: Object) -> Replacement | None:
    if desired["kind"] == "Job":
        return Replacement(current, "Background")
    if desired["kind"] == "StatefulSet":
        want = desired["spec"].get("volumeClaimTemplates") or []
        have = current.get("spec", {}).get("volumeClaimTemplates") or []
        if not covers(have, want):
            sizes = [t["spec"]["resources"]["requests"]["storage"] for t in want]
            return Replacement(current, "Orphan", max(sizes, key=_quantity) if sizes else None)
    return None


def key(obj: Mapping[str, Any]) -> Key:
    return obj["kind"], obj["metadata"]["name"]


def applied_hash(obj: Mapping[str, Any]) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamp(obj: Object, owner: Mapping[str, Any]) -> Object:
    """The object as sent: owner reference plus the hash of the desired content."""
    meta = dict(obj["metadata"])
    meta["annotations"] = {**meta.get("annotations", {}), APPLIED_HASH: applied_hash(obj)}
    owner_meta = owner["metadata"]
    meta["ownerReferences"] = [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner_meta["name"],
            "uid": owner_meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    return {**obj, "metadata": meta}


def _is_zero(value: Any) -> bool:
    # The API server omits empty strings, lists, maps and false/zero from its output.
    return value in (None, "", [], {}, False, 0)


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    if isinstance(want, str) and isinstance(have, str):
        # The API server rewrites quantities to canonical form (0.5 -> 500m, 1024Mi ->
        # 1Gi). Strings that are both quantities are compared by value; a non-quantity
        # string field holding two spellings of one number would compare equal too.
        try:
            return _quantity(want) == _quantity(have)
        except ValueError:
            return False
    return False


_INT64_MAX = Decimal(2**63 - 1)


def _quantity(text: str) -> Decimal:
    """A quantity as the API server stores it: rounded up to a thousandth, capped at int64.

    Comparing raw values would see `0.0001` (stored as `1m`) as drift on every pass.
    """
    value = parse_quantity(text)
    return min(value.quantize(Decimal("0.001"), rounding=ROUND_CEILING), _INT64_MAX)


def covers(have: Any, want: Any) -> bool:
    """True when `have` (live) holds every field of `want` (desired) with equal values.

    Fields the server added (defaults, status, metadata) are ignored; lists must match
    element by element.
    """
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return _is_zero(want) and _is_zero(have)
        return all(covers(have.get(k), v) if k in have else _is_zero(v) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(have, list):
            return _is_zero(want) and _is_zero(have)
        return len(want) == len(have) and all(covers(h, w) for h, w in zip(have, want, strict=True))
    return _same_scalar(want, have) or (_is_zero(want) and _is_zero(have))


def _owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner_uid and ref.get("controller") for ref in refs)


@dataclass(frozen=True)
class Plan:
    apply: tuple[Object, ...]  # stamped, ready to send
    prune: tuple[Object, ...]  # live objects to delete, no longer desired
    replace: tuple[Replacement, ...]  # live objects to delete, to be created anew
    unchanged: int

    @property
    def empty(self) -> bool:
        return not self.apply and not self.prune and not self.replace


def plan(
    *,
    desired: Iterable[Object],
    live: Iterable[Object],
    owner: Mapping[str, Any],
) -> Plan:
    live_by_key = {key(obj): obj for obj in live}
    owner_uid = owner["metadata"]["uid"]
    to_apply: list[Object] = []
    to_replace: list[Replacement] = []
    wanted: set[Key] = set()
    unchanged = 0

    for obj in desired:
        wanted.add(key(obj))
        stamped = stamp(obj, owner)
        current = live_by_key.get(key(obj))
        if current is not None and _up_to_date(current, stamped):
            unchanged += 1
        elif current is not None and current["metadata"].get("deletionTimestamp"):
            pass  # being replaced already; the next pass creates it
        elif current is not None and (replacement := _replacement(current, stamped)):
            to_replace.append(replacement)
        else:
            to_apply.append(stamped)

    to_prune = [
        obj
        for k, obj in sorted(live_by_key.items())
        if k not in wanted
        and APPLIED_HASH in (obj["metadata"].get("annotations") or {})
        and _owned_by(obj, owner_uid)
    ]
    return Plan(
        apply=tuple(to_apply),
        prune=tuple(to_prune),
        replace=tuple(to_replace),
        unchanged=unchanged,
    )


def _up_to_date(live: Mapping[str, Any], stamped: Mapping[str, Any]) -> bool:
    live_hash = (live["metadata"].get("annotations") or {}).get(APPLIED_HASH)
    want_hash = stamped["metadata"]["annotations"][APPLIED_HASH]
    return live_hash == want_hash and covers(live, stamped)
