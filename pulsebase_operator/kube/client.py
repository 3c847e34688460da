"""The only code that talks to the API server.

A thin layer over the `kubernetes` package's dynamic client: list children by label,
server-side apply with one field manager, create-once, delete with a UID precondition,
status patches and Events, and whether an optional kind is served at all. Failures come
out as `TemporaryError` (retry later) or `PermanentError` (report and wait for a spec
change), so callers never see HTTP codes.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError
from urllib3.exceptions import HTTPError

from pulsebase_operator.api import models

FIELD_MANAGER = "pulsebase-operator"
REPORTING_COMPONENT = "pulsebase-operator"
_TIMEOUT = (5, 30)  # connect, read: one slow call must not stall a pass for minutes
# The API server's words when it refuses to create an object whose CRD is being deleted.
_CRD_TERMINATING = "custom resource definition is terminating"
# How long an answer about an optional kind holds: an add-on installed or removed later
# is noticed within this time, for one discovery request per group version.
DISCOVERY_SECONDS = 180.0

Object = dict[str, Any]


class KubeError(Exception):
    """An API call failed; `step` says what the operator was doing."""

    def __init__(self, step: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail
        self.status = status


class TemporaryError(KubeError):
    """Worth retrying: the server is unreachable, overloaded, or an object is in flux."""


class PermanentError(KubeError):
    """Retrying the same request will fail the same way (invalid object, forbidden)."""


def _classify(step: str, error: Exception) -> KubeError:
    status = getattr(error, "status", None)
    detail = _reason(error)
    if status is None or status in (409, 429) or status >= 500:
        return TemporaryError(step, detail, status)
    return PermanentError(step, detail, status)


def _reason(error: Exception) -> str:
    body = getattr(error, "body", None) or getattr(error, "summary", lambda: None)()
    if isinstance(body, bytes | str):
        text = body.decode() if isinstance(body, bytes) else body
        # The API server's Status message names the field and the rule that failed.
        try:
            return str(json.loads(text).get("message", text))
        except ValueError:
            return text
    return str(error)


# group version -> the plural resource names it serves, or None when it serves none.
FetchResources = Callable[[str], frozenset[str] | None]


@dataclass(frozen=True)
class _Answer:
    resources: frozenset[str] | None
    asked_at: float


class Discovery:
    """Which resources each group version serves, asked again after `ttl` seconds.

    Some children (prometheus-operator's PrometheusRule) exist only where an add-on
    installed their CRD. A 404 from discovery means "not served". Any other failure
    keeps the last answer, or is a `TemporaryError` while there is none: a missing
    answer must never pass for "not served", which would stop the pass from pruning
    what it made. Safe to share between the passes' threads.
    """

    def __init__(
        self,
        fetch: FetchResources,
        *,
        ttl: float = DISCOVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[str, _Answer] = {}

    def serves(self, api_version: str, plural: str) -> bool:
        now = self._clock()
        with self._lock:
            known = self._answers.get(api_version)
        if known is None or now - known.asked_at >= self._ttl:
            known = self._ask(api_version, now=now, last=known)
        return known.resources is not None and plural in known.resources

    def forget(self, api_version: str) -> None:
        """Ask again on next use: a request has just shown the answer to be stale."""
        with self._lock:
            self._answers.pop(api_version, None)

    def _ask(self, api_version: str, *, now: float, last: _Answer | None) -> _Answer:
        # Outside the lock: two passes may both ask once, but a slow answer for one
        # group never holds up a pass that has a fresh answer for another.
        try:
            answer = _Answer(self._fetch(api_version), now)
        except KubeError as error:
            if last is not None:
                return last  # kept, and asked again on the next use
            raise TemporaryError(f"discover {api_version}", error.detail, error.status) from error
        with self._lock:
            self._answers[api_version] = answer
        return answer


def kind_gone(error: KubeError, *, creating: bool) -> bool:
    """Whether a failed list or apply says that the kind itself is gone or going.

    A collection is never missing, and apply creates what is absent, so a 404 to either
    means the API server stopped serving the kind (its CRD was deleted). While a CRD is
    being deleted, the API server refuses to create objects of it with a 403.
    """
    if error.status == 404:
        return True
    return creating and error.status == 403 and _CRD_TERMINATING in error.detail


def load_config(kubeconfig: str | None = None) -> tuple[k8s.ApiClient, bool]:
    """An API client from a kubeconfig file, or from the pod's service account.

    The flag says whether the service account was used (its token rotates, so kopf
    should read it itself rather than be handed a copy).
    """
    configuration = k8s.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
            return k8s.ApiClient(_send_token(configuration)), True
        except k8s_config.ConfigException:
            path = os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]
            kubeconfig = os.path.expanduser(path)
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return k8s.ApiClient(_send_token(configuration)), False


def _send_token(configuration: k8s.Configuration) -> k8s.Configuration:
    """Make sure a bearer token is sent at all.

    kubernetes 36.0.0 loads the token into `api_key["authorization"]` but builds the
    header only from `api_key["BearerToken"]`, so every request went out anonymous
    (kubernetes-client/python#2584, fixed in a later 36 release). The token is mirrored
    under the new key, and again after each refresh, since a service account token
    rotates. This can go once the pin leaves 36.0.0.
    """
    loaded_hook = configuration.refresh_api_key_hook

    def mirror(config: k8s.Configuration) -> None:
        if loaded_hook is not None:
            loaded_hook(config)
        if "authorization" in config.api_key:
            config.api_key["BearerToken"] = config.api_key["authorization"]

    if "authorization" in configuration.api_key:
        configuration.api_key["BearerToken"] = configuration.api_key["authorization"]
        configuration.refresh_api_key_hook = mirror
    return configuration


def connection_info(api_client: k8s.ApiClient) -> dict[str, Any]:
    """The settings kopf's own client needs to act as the same user."""
    cfg = api_client.configuration
    token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    scheme, _, value = (token or "").partition(" ")
    return {
        "server": cfg.host,
        "ca_path": cfg.ssl_ca_cert,
        "insecure": not cfg.verify_ssl,
        "certificate_path": cfg.cert_file,
        "private_key_path": cfg.key_file,
        "scheme": scheme if value else None,
        "token": value or None,
    }


class Kube:
    """Calls the operator makes, each one request (discovery is cached after first use)."""

    def __init__(
        self, api_client: k8s.ApiClient, *, discovery_seconds: float = DISCOVERY_SECONDS
    ) -> None:
        self._client = DynamicClient(api_client)
        self._lock = threading.Lock()  # discovery's lazy cache is not thread-safe
        self._discovery = Discovery(self._served_resources, ttl=discovery_seconds)

    def _resource(self, api_version: str, kind: str) -> Any:
        with self._lock:
            return self._client.resources.get(api_version=api_version, kind=kind)

    def _call(self, step: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=_TIMEOUT, **kwargs)
        except (ApiException, DynamicApiError) as error:
            raise _classify(step, error) from error
        except (HTTPError, OSError) as error:
            raise TemporaryError(step, str(error)) from error

    def may(self, *, verb: str, group: str, resource: str, namespace: str | None = None) -> bool:
        """Whether this identity may do `verb` on `resource`, by asking the API server
        (a SelfSubjectAccessReview, which every authenticated user may create)."""
        attributes = {"verb": verb, "group": group, "resource": resource}
        if namespace is not None:
            attributes["namespace"] = namespace
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        resource_api = self._resource("authorization.k8s.io/v1", "SelfSubjectAccessReview")
        answer = self._call(
            f"ask whether it may {verb} {resource}", resource_api.create, body=review
        )
        return bool(_plain(answer).get("status", {}).get("allowed"))

    def serves(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves this resource (an answer at most a few minutes old)."""
        return self._discovery.serves(api_version, plural)

    def _served_resources(self, api_version: str) -> frozenset[str] | None:
        prefix = "/api" if "/" not in api_version else "/apis"
        try:
            found = self._call(
                f"discover {api_version}", self._client.request, "get", f"{prefix}/{api_version}"
            )
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        return frozenset(r["name"] for r in _plain(found).get("resources") or [])

    def _gone(self, step: str, api_version: str, error: KubeError) -> TemporaryError:
        """The kind went away mid-pass (its CRD was deleted), or is going. Discovery is
        asked again on the next pass, which, after the usual short backoff, leaves that
        kind out once it is gone."""
        self._discovery.forget(api_version)
        return TemporaryError(step, error.detail, error.status)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Object | None:
        step = f"read {kind} {namespace}/{name}"
        try:
            resource = self._resource(api_version, kind)
            found = self._call(step, resource.get, name=name, namespace=namespace)
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        except ResourceNotFoundError as error:
            raise PermanentError(step, f"the API server does not serve {kind}") from error
        return _plain(found)

    def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[Object]:
        step = f"list {kind} in {namespace}"
        try:
            resource = self._resource(api_version, kind)
        except ResourceNotFoundError as error:
            raise PermanentError(step, f"the API server does not serve {kind}") from error
        try:
            found = self._call(step, resource.get, namespace=namespace, label_selector=selector)
        except KubeError as error:
            if kind_gone(error, creating=False):
                raise self._gone(step, api_version, error) from error
            raise
        items: list[Object] = _plain(found).get("items") or []
        for item in items:  # list items come without their type
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def apply(self, obj: Object) -> Object:
        """Server-side apply, taking ownership of the fields we set (force)."""
        meta = obj["metadata"]
        step = f"apply {obj['kind']} {meta.get('namespace', '')}/{meta['name']}"
        resource = self._resource(obj["apiVersion"], obj["kind"])
        # Sent as text: the client's own JSON encoding escapes characters outside the
        # Basic Multilingual Plane as surrogate pairs, which the API server's YAML
        # decoder refuses. The charset parameter keeps the client from encoding the
        # text once more (kubernetes 36 JSON-encodes any body sent as exactly
        # application/apply-patch+yaml); the API server accepts it.
        body = json.dumps(obj, ensure_ascii=False)
        try:
            applied = self._call(
                step,
                self._client.request,
                "patch",
                resource.path(name=meta["name"], namespace=meta.get("namespace")),
                body=body.encode(),
                content_type="application/apply-patch+yaml; charset=utf-8",
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
        except KubeError as error:
            if kind_gone(error, creating=True):
                raise self._gone(step, obj["apiVersion"], error) from error
            raise
        return _plain(applied)

    def create(self, obj: Object) -> Object | None:
        """Create if absent; None when it already exists (never overwrite)."""
        meta = obj["metadata"]
        step = f"create {obj['kind']} {meta.get('namespace', '')}/{meta['name']}"
        resource = self._resource(obj["apiVersion"], obj["kind"])
        try:
            created = self._call(
                step,
                resource.create,
                body=obj,
                namespace=meta.get("namespace"),
                field_manager=FIELD_MANAGER,
            )
        except KubeError as error:
            if error.status == 409:
                return None
            raise
        return _plain(created)

    def delete(self, obj: Object, propagation: str = "Background") -> None:
        """Delete exactly this object (UID precondition); dependents in the background,
        or left in place with `propagation="Orphan"`."""
        meta = obj["metadata"]
        step = f"delete {obj['kind']} {meta.get('namespace', '')}/{meta['name']}"
        resource = self._resource(obj["apiVersion"], obj["kind"])
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": propagation,
            "preconditions": {"uid": meta["uid"]},
        }
        try:
            self._call(
                step,
                resource.delete,
                name=meta["name"],
                namespace=meta.get("namespace"),
                body=body,
            )
        except KubeError as error:
            if error.status not in (404, 409):  # already gone, or replaced meanwhile
                raise

    def merge_patch(self, obj: Object, patch: Mapping[str, Any], *, step: str) -> Object:
        """A JSON merge patch, for the few fields the operator changes outside apply."""
        meta = obj["metadata"]
        resource = self._resource(obj["apiVersion"], obj["kind"])
        patched = self._call(
            step,
            resource.patch,
            body=dict(patch),
            name=meta["name"],
            namespace=meta["namespace"],
            content_type="application/merge-patch+json",
            field_manager=FIELD_MANAGER,
        )
        return _plain(patched)

    def grow_claim(self, claim: Object, size: str) -> None:
        """Ask for a larger volume; the storage class must allow expansion."""
        meta = claim["metadata"]
        self.merge_patch(
            claim,
            {"spec": {"resources": {"requests": {"storage": size}}}},
            step=f"resize PersistentVolumeClaim {meta['namespace']}/{meta['name']} to {size}",
        )

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Object:
        step = f"write status of {models.KIND} {namespace}/{name}"
        resource = self._resource(models.API_VERSION, models.KIND)
        patched = self._call(
            step,
            resource.status.patch,
            body={"status": dict(status)},
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            field_manager=FIELD_MANAGER,
        )
        return _plain(patched)

    def post_event(
        self,
        *,
        owner: Object,
        reason: str,
        message: str,
        warning: bool = False,
        correlation_id: str | None = None,
    ) -> None:
        """An Event on the PulseBase, as `kubectl describe` shows it."""
        meta = owner["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event: Object = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{meta['name']}.",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": REPORTING_COMPONENT},
            "reportingComponent": REPORTING_COMPONENT,
            "reportingInstance": REPORTING_COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        if correlation_id:
            event["metadata"]["annotations"] = {"pulsebase.io/correlation-id": correlation_id}
        resource = self._resource("v1", "Event")
        self._call(f"post event {reason}", resource.create, body=event, namespace=meta["namespace"])


def _plain(found: Any) -> Any:
    """ResourceInstance -> plain dicts and lists."""
    return found.to_dict() if hasattr(found, "to_dict") else found
