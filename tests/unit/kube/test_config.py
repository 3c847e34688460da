"""A kubeconfig with a bearer token yields a client that sends it, as kopf's login needs."""

from __future__ import annotations

from pathlib import Path

import yaml
from kubernetes import client as k8s

from pulsebase_operator.kube import client
from pulsebase_operator.kube.client import connection_info, load_config


def kubeconfig(path: Path, token: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "local", "user": "operator"}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_token_of_a_kubeconfig_is_sent_with_every_request(tmp_path: Path) -> None:
    api_client, in_cluster = load_config(str(kubeconfig(tmp_path / "config", "s3cr3t")))
    assert in_cluster is False
    headers: dict[str, str] = {}
    api_client.update_params_for_auth(headers, [], ["BearerToken"])
    assert headers == {"authorization": "Bearer s3cr3t"}
    info = connection_info(api_client)
    assert (info["scheme"], info["token"]) == ("Bearer", "s3cr3t")


def test_a_rotated_token_is_sent_too() -> None:
    configuration = k8s.Configuration()
    configuration.api_key["authorization"] = "Bearer first"

    def rotate(config: k8s.Configuration) -> None:
        # What the in-cluster loader's hook does once the projected token was renewed.
        config.api_key["authorization"] = "Bearer second"

    configuration.refresh_api_key_hook = rotate
    api_client = k8s.ApiClient(client._send_token(configuration))
    headers: dict[str, str] = {}
    api_client.update_params_for_auth(headers, [], ["BearerToken"])
    assert headers == {"authorization": "Bearer second"}
