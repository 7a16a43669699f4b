"""What can be checked of the deployment assets without Docker or a cluster: that they parse and agree.

Docker cannot run on this machine: these tests read the Dockerfile, deploy/compose.yaml, the
Kubernetes manifests and the Grafana and Prometheus files, and check that names, ports, paths and
settings refer to each other consistently (README, Deployment).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from stream_app.settings import Settings
from tests.harness import ROOT

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana/dashboards/cx-engine.json"
YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml"})


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path):
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents, f"{path} is empty"


def test_yaml_files_found():
    names = {str(p.relative_to(DEPLOY)) for p in YAML_FILES}
    assert {"compose.yaml", "prometheus/prometheus.yml", "prometheus/prometheus.compose.yml",
            "prometheus/rules.yml", "k8s/deployment.yaml"} <= names


# --- docker compose ----------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def workers(services: dict) -> dict[str, dict]:
    """Services that run the image's default command: the workers."""
    return {name: s for name, s in services.items() if s.get("image", "").startswith("cx-engine:")
            and "command" not in s}


def listener(advertised: str, name: str) -> str:
    """host:port of one named listener in KAFKA_ADVERTISED_LISTENERS."""
    for entry in advertised.split(","):
        scheme, _, address = entry.partition("://")
        if scheme == name:
            return address
    raise AssertionError(f"no {name} listener in {advertised}")


def test_compose_has_every_service_with_pinned_images():
    services = compose()["services"]
    assert set(services) == {"kafka", "redis", "worker-1", "worker-2", "simulator", "prometheus", "grafana"}
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image version"


def test_compose_kafka_runs_kraft_without_auto_created_topics():
    env = compose()["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in json.dumps(env).lower()
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    node, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert node == env["KAFKA_NODE_ID"] and voter == "kafka:9093"
    assert f"CONTROLLER://:{voter.split(':')[1]}" in env["KAFKA_LISTENERS"]


def test_compose_workers_and_simulator_reach_kafka_and_redis_by_service_name():
    services = compose()["services"]
    advertised = listener(services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"], "PLAINTEXT")
    assert advertised.split(":")[0] == "kafka"
    found = workers(services)
    assert set(found) == {"worker-1", "worker-2"}
    for name, service in [*found.items(), ("simulator", services["simulator"])]:
        env = service["environment"]
        assert env["CX_KAFKA_BOOTSTRAP"] == advertised, name
    for name, service in found.items():
        env = service["environment"]
        redis = urlsplit(env["CX_REDIS_URL"])
        assert redis.scheme == "redis" and redis.hostname in services and redis.port == 6379, name
        assert env["CX_WEB_HOST"] == "0.0.0.0", f"{name}: must listen beyond the container's loopback"
        settings = Settings(_env_file=None, **{k[3:].lower(): v for k, v in env.items()
                                              if k[3:].lower() in Settings.model_fields})
        assert settings.kafka_bootstrap == advertised
        assert {"kafka", "redis"} <= set(service["depends_on"]), name


def test_compose_worker_ports_and_prometheus_targets_agree():
    services = compose()["services"]
    targets = set()
    for name, service in workers(services).items():
        port = service["environment"]["CX_WEB_PORT"]
        assert [p.split(":")[-1] for p in service["ports"]] == [port], name
        targets.add(f"{name}:{port}")
    command = services["prometheus"]["command"]
    config_path = next(a.split("=", 1)[1] for a in command if a.startswith("--config.file="))
    mounts = dict(reversed(v.split(":")[:2]) for v in services["prometheus"]["volumes"])
    local_dir = DEPLOY / mounts[str(Path(config_path).parent)]
    config = yaml.safe_load((local_dir / Path(config_path).name).read_text())
    (job,) = config["scrape_configs"]
    assert {t for c in job["static_configs"] for t in c["targets"]} == targets
    for rule_file in config["rule_files"]:
        assert (local_dir / rule_file).is_file(), rule_file


def test_compose_mounts_exist_and_worker_rules_file_is_mounted():
    services = compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), f"{name}: {source}"
    for name, service in workers(services).items():
        targets = {v.split(":")[1] for v in service["volumes"]}
        assert service["environment"]["CX_RULES_FILE"] in targets, name


def test_compose_grafana_datasource_points_at_the_prometheus_service():
    services = compose()["services"]
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    url = urlsplit(source["url"])
    listen = next(a for a in services["prometheus"]["command"] if a.startswith("--web.listen-address="))
    assert url.hostname == "prometheus" and url.port == int(listen.rsplit(":", 1)[1])
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/cx-engine.yml").read_text())
    (entry,) = provider["providers"]
    mounts = dict(reversed(v.split(":")[:2]) for v in services["grafana"]["volumes"])
    assert (DEPLOY / mounts[entry["options"]["path"]] / DASHBOARD.name).is_file()


# --- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_runs_the_worker_as_non_root_with_a_health_check():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in {"root", "0"}
    assert 'CMD ["python", "-m", "stream_app", "worker"]' in text
    port = re.search(r"CX_WEB_PORT=(\d+)", text)[1]
    assert f"EXPOSE {port}" in text and "/healthz" in text.split("HEALTHCHECK", 1)[1]
    assert "CX_WEB_HOST=0.0.0.0" in text
    for source in re.findall(r"^COPY (\S+)", text, re.M):
        assert (ROOT / source).exists(), source


# --- Kubernetes --------------------------------------------------------------------------------


def manifests() -> dict[str, dict]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["apiVersion"] and document["metadata"]["name"], path
            found[document["kind"]] = document
    return found


def test_k8s_probes_hit_readyz_and_healthz_on_the_container_port():
    found = manifests()
    pod = found["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config = found["ConfigMap"]["data"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"web": int(config["CX_WEB_PORT"])}
    assert config["CX_WEB_HOST"] == "0.0.0.0"
    probes = {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"}
    for probe, path in probes.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in ports or get["port"] in ports.values(), probe
    annotations = found["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["web"]


def test_k8s_worker_stops_gracefully_runs_non_root_and_has_resources():
    found = manifests()
    pod = found["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["python", "-m", "stream_app", "worker"]
    assert pod["terminationGracePeriodSeconds"] > 30
    assert container["lifecycle"]["preStop"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    config_name = found["ConfigMap"]["metadata"]["name"]
    assert {e["configMapRef"]["name"] for e in container["envFrom"]} == {config_name}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config = found["ConfigMap"]["data"]
    assert Path(config["CX_DATA_DIR"]).is_relative_to(mounts["data"])
    assert Path(config["CX_RULES_FILE"]).parent == Path(mounts["rules"])
    assert volumes["rules"]["configMap"]["name"] == "cx-engine-rules"
    assert all(k.startswith("CX_") and k[3:].lower() in Settings.model_fields for k in config)


def test_k8s_service_and_budget_select_the_worker_pods():
    found = manifests()
    labels = found["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert found["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert found["Service"]["spec"]["selector"].items() <= labels.items()
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = found["Service"]["spec"]["ports"]
    assert port["targetPort"] == "web"


# --- Grafana dashboard -------------------------------------------------------------------------


def panels(items: list[dict]):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def test_dashboard_datasource_is_a_template_variable_everywhere():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    assert {"tenant", "channel", "window"} <= set(variables)
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == "${datasource}", variable["name"]
            assert variable["definition"].startswith("label_values("), variable["name"]
    targets = 0
    for panel in panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            targets += 1
    assert targets >= 15
    assert "cx-prometheus" not in DASHBOARD.read_text(), "the provisioned datasource uid is not hard-coded"


def test_dashboard_covers_every_contract_metric():
    text = DASHBOARD.read_text()
    for metric in ("cx_ces_mean", "cx_ces_net_ease", "cx_csat_satisfied_ratio", "cx_nps_score",
                   "cx_survey_responses", "cx_interactions", "cx_abandoned_ratio", "cx_handle_seconds_mean",
                   "cx_wait_seconds_mean", "cx_fcr_ratio", "cx_service_level_ratio",
                   "cx_survey_delay_p90_seconds", "cx_alerts_firing",
                   "cx_events_total", "cx_consumer_lag_records", "cx_batch_processing_seconds_bucket",
                   "cx_sink_errors_total", "cx_sink_dropped_total", "cx_table_recovered",
                   "cx_table_recovery_seconds"):
        assert metric in text, metric
