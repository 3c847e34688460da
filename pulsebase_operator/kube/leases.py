"""Leader election on a coordination.k8s.io Lease, so two replicas never reconcile at once.

kopf's peering would freeze replicas of equal priority rather than elect one. This is
the client-go scheme instead: campaign until the Lease is ours (or has not been renewed
for its whole duration, judged by our own clock so that clock skew between nodes does not
matter), then renew it in a background thread. A replica that cannot renew in time stops
reconciling and exits, and the Deployment restarts it as a follower. A graceful stop
releases the Lease so a follower takes over at its next retry.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("pulsebase_operator.leader")


@dataclass(frozen=True)
class Timing:
    lease_seconds: int = 15  # how long a silent leader keeps the Lease
    renew_seconds: float = 5.0  # how often the leader renews
    retry_seconds: float = 2.0  # how often a follower looks again


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaderElection:
    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing = Timing(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = k8s.CoordinationV1Api(api_client)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.timing = timing
        self._clock = clock
        self._seen: tuple[str | None, float] = (None, 0.0)  # resourceVersion, when seen
        self._renewed_at = 0.0

    def try_acquire(self) -> bool:
        """One attempt: True when the Lease is ours afterwards."""
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            return self._create()
        spec = lease.spec = lease.spec or k8s.V1LeaseSpec()
        version = lease.metadata.resource_version if lease.metadata else None
        if version != self._seen[0]:
            self._seen = (version, self._clock())
        holder = spec.holder_identity or ""
        expired = self._clock() - self._seen[1] > (spec.lease_duration_seconds or 0)
        if holder not in ("", self.identity) and not expired:
            return False
        if holder != self.identity:
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.acquire_time = _now()
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = self.timing.lease_seconds
        spec.renew_time = _now()
        return self._replace(lease)

    def _create(self) -> bool:
        now = _now()
        lease = k8s.V1Lease(
            metadata=k8s.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=k8s.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=self.timing.lease_seconds,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            self._api.create_namespaced_lease(self.namespace, lease)
        except ApiException as error:
            if error.status == 409:  # another replica created it first
                return False
            raise
        self._renewed_at = self._clock()
        return True

    def _replace(self, lease: k8s.V1Lease) -> bool:
        try:
            self._api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as error:
            if error.status == 409:  # someone else wrote it since we read it
                return False
            raise
        self._renewed_at = self._clock()
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Campaign until the Lease is ours (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if self.try_acquire():
                    log.info("became the leader", extra={"lease": self.name})
                    return True
            except (ApiException, OSError) as error:
                log.warning("could not read the lease: %s", error)
            if not announced:
                log.info("waiting to become the leader", extra={"lease": self.name})
                announced = True
            stop.wait(self.timing.retry_seconds)
        return False

    def keep(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Renew until `stop`; call `on_lost` when the Lease could not be kept."""
        while not stop.wait(self.timing.renew_seconds):
            try:
                if self.try_acquire():
                    continue
            except (ApiException, OSError) as error:
                log.warning("could not renew the lease: %s", error)
            # Give up before the Lease expires, so no other replica can start in overlap.
            if self._clock() - self._renewed_at > self.timing.lease_seconds * 2 / 3:
                log.error("lost the lease; stopping")
                on_lost()
                return

    def release(self) -> None:
        """Hand the Lease back so a follower does not wait for it to expire."""
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = ""
            lease.spec.lease_duration_seconds = 1
            self._api.replace_namespaced_lease(self.name, self.namespace, lease)
            log.info("released the lease", extra={"lease": self.name})
        except (ApiException, OSError) as error:
            log.warning("could not release the lease: %s", error)
