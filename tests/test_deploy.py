"""The deployment recipe (deploy/): the compose file against the Compose Specification's JSON
schema (vendored by check-jsonschema), the Kubernetes manifests against the Kubernetes API
schemas (kubernetes-validate, strict: unknown fields fail), and what the recipe promises:
every part present, the service's probes on /healthz and /readyz, no secret values in it.
Neither is run here (no container engine, no cluster)."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.33.0"  # the oldest Kubernetes release still maintained in 2026
PARTS = {"api", "learner", "redis", "mlflow", "arangodb"}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    out = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            if doc is not None:
                out.append((name, doc))
    return out


def test_compose_file_follows_the_compose_specification() -> None:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_compose())]
    assert errors == []


def test_compose_file_runs_every_part_with_probes_and_no_secrets() -> None:
    services = _compose()["services"]
    assert set(services) == PARTS
    probe = " ".join(services["api"]["healthcheck"]["test"])
    assert "/readyz" in probe
    for name in ("api", "learner"):
        env = services[name]["environment"]
        for key in ("MARQUEE_API_TOKEN", "MARQUEE_ARANGO_PASSWORD"):
            assert str(env[key]).startswith("${"), f"{name}: {key} must come from the environment"
        assert env["MARQUEE_REDIS_URL"].startswith("redis://redis:")
    assert str(services["arangodb"]["environment"]["ARANGO_ROOT_PASSWORD"]).startswith("${")


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yaml")))
def test_every_manifest_file_is_listed(name: str) -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert name == "kustomization.yaml" or name in listed


def test_kubernetes_manifests_match_the_api_schemas() -> None:
    manifests = _manifests()
    assert len(manifests) >= 10
    for name, doc in manifests:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:  # name the file and the object
            pytest.fail(f"{name}: {doc.get('kind')} {doc['metadata'].get('name')}: {exc}")


def test_kubernetes_recipe_wires_probes_and_keeps_secrets_out() -> None:
    manifests = [doc for _, doc in _manifests()]
    assert not [d for d in manifests if d["kind"] == "Secret"]  # the operator creates it
    workloads = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "StatefulSet"}
    assert set(workloads) == {"marquee-api", "marquee-learner", "redis", "mlflow", "arangodb"}
    (api,) = workloads["marquee-api"]["spec"]["template"]["spec"]["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for doc in manifests:
        text = yaml.safe_dump(doc)
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get(
            "containers", []
        ):
            for var in container.get("env", []):
                if "PASSWORD" in var["name"] or "TOKEN" in var["name"]:
                    assert "value" not in var and "secretKeyRef" in var["valueFrom"], text
