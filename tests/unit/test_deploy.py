#!/usr/bin/env python3
"""test_deploy.py -- invariants of the Kubernetes manifests in deploy/ and the Dockerfile.

Every manifest parses (PyYAML); every AW_* variable that deploy/ sets exists in the settings
table of the built aw-worker (`--config-table`); the ConfigMap passes `aw-worker --check-config`;
the pod grace period exceeds AW_SHUTDOWN_TIMEOUT_MS; probes hit /healthz and /readyz on the port of
AW_HTTP_ADDR; Redis runs with AOF (appendonly yes, appendfsync everysec) on a PVC; pods run as
non-root with a read-only root file system; no secret values are committed.

Needs AW_SOURCE_DIR and AW_BUILD_DIR (set by ctest); a missing aw-worker binary is a failure.
"""
import glob
import os
import re
import subprocess
import tempfile
import unittest

import yaml

SRC = os.environ.get("AW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("AW_BUILD_DIR", "")
DEPLOY = os.path.join(SRC, "deploy")
WORKER = os.path.join(BUILD, "aw-worker")


def load_all():
    """{filename: [documents]} for every YAML file under deploy/."""
    docs = {}
    for path in sorted(glob.glob(os.path.join(DEPLOY, "**", "*.y*ml"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            docs[os.path.relpath(path, DEPLOY)] = [d for d in yaml.safe_load_all(f) if d is not None]
    return docs


def resources(docs, kind, include_examples=False):
    out = []
    for name, items in docs.items():
        if not include_examples and ".example." in name:
            continue
        out.extend(d for d in items if d.get("kind") == kind)
    return out


def one(docs, kind, name):
    found = [d for d in resources(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def settings_table():
    """Variable names and defaults from the built binary (the table of worker/settings.c)."""
    out = subprocess.run([WORKER, "--config-table"], check=True, capture_output=True, text=True,
                         timeout=30).stdout
    rows = re.findall(r"^\| `(AW_[A-Z0-9_]+)` \| ([^|]*) \|", out, re.M)
    return {name: default.strip() for name, default in rows}


class DeployTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = load_all()
        cls.deployment = one(cls.docs, "Deployment", "aw-worker")
        cls.pod = cls.deployment["spec"]["template"]["spec"]
        cls.container = next(c for c in cls.pod["containers"] if c["name"] == "aw-worker")
        cls.env_cm = one(cls.docs, "ConfigMap", "aw-worker-env")

    def test_binary_present(self):
        self.assertTrue(BUILD, "AW_BUILD_DIR is not set")
        self.assertTrue(os.access(WORKER, os.X_OK), f"{WORKER} not built")

    def test_manifests_parse_and_are_listed(self):
        self.assertGreaterEqual(len(self.docs), 8)
        for name, items in self.docs.items():
            self.assertTrue(items, f"{name} is empty")
            for d in items:
                self.assertIn("apiVersion", d, name)
                self.assertIn("kind", d, name)
                if d["kind"] != "Kustomization":
                    self.assertTrue(d.get("metadata", {}).get("name"), f"{name}: unnamed")
        kust = self.docs["kustomization.yaml"][0]
        listed = set(kust["resources"])
        for path in listed:
            self.assertTrue(os.path.isfile(os.path.join(DEPLOY, path)), f"{path} missing")
        for name in self.docs:
            if name == "kustomization.yaml" or ".example." in name:
                continue
            self.assertIn(name, listed, f"{name} is not in kustomization.yaml")
        # The Secret template is never applied.
        for path in listed:
            for d in self.docs[path]:
                self.assertNotEqual(d["kind"], "Secret", f"{path}: Secret applied from the repo")

    def test_no_secret_values(self):
        for path in glob.glob(os.path.join(DEPLOY, "**", "*"), recursive=True):
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                self.assertNotRegex(text, r"pk_[A-Za-z0-9]{8,}", f"{path}: Klaviyo key")
                self.assertNotRegex(text, r"redis://[^\s\"'$]*:[^\s\"'$@]+@",
                                    f"{path}: password in a Redis URL")
        for secret in resources(self.docs, "Secret", include_examples=True):
            for key, value in (secret.get("stringData") or {}).items():
                self.assertEqual(value, "", f"Secret {secret['metadata']['name']}.{key} has a value")
            self.assertFalse(secret.get("data"), "Secret with data")
        for key in self.env_cm["data"]:
            self.assertNotIn(key, ("AW_REDIS_URL",), "AW_REDIS_URL holds a password: Secret only")

    def deploy_env_names(self):
        names = set(self.env_cm["data"])
        for c in self.pod["containers"]:
            names.update(e["name"] for e in c.get("env", []))
        return {n for n in names if n.startswith("AW_")}

    def test_env_vars_exist_in_settings_table(self):
        table = settings_table()
        self.assertIn("AW_KAFKA_BROKERS", table)
        self.assertIn("AW_SHUTDOWN_TIMEOUT_MS", table)
        names = self.deploy_env_names()
        self.assertGreaterEqual(len(names), 10)
        for name in sorted(names):
            self.assertIn(name, table, f"{name} is set in deploy/ but unknown to aw-worker")
        # The Deployment reads the ConfigMap it is checked against.
        refs = [e["configMapRef"]["name"] for e in self.container["envFrom"] if "configMapRef" in e]
        self.assertIn("aw-worker-env", refs)

    def effective_settings(self):
        """Runs aw-worker --check-config on the ConfigMap (files it names materialised from the
        mounted ConfigMaps, the Secret-provided URL replaced by a placeholder)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AW_")}
        env.update({k: str(v) for k, v in self.env_cm["data"].items()})
        env["AW_REDIS_URL"] = "redis://:placeholder@redis-0.redis:6379/0"
        env["AW_INSTANCE_ID"] = "aw-worker-0"
        mounts = {}
        for vm in self.container.get("volumeMounts", []):
            vol = next(v for v in self.pod["volumes"] if v["name"] == vm["name"])
            if "configMap" in vol:
                mounts[vm["mountPath"]] = one(self.docs, "ConfigMap", vol["configMap"]["name"])
        with tempfile.TemporaryDirectory() as tmp:
            for name, value in list(env.items()):
                if not (name.startswith("AW_") and value.startswith("/")):
                    continue
                for mount, cm in mounts.items():
                    if value.startswith(mount + "/"):
                        key = value[len(mount) + 1:]
                        self.assertIn(key, cm["data"], f"{name}={value} not in the mounted ConfigMap")
                        local = os.path.join(tmp, key)
                        with open(local, "w", encoding="utf-8") as f:
                            f.write(cm["data"][key])
                        env[name] = local
            proc = subprocess.run([WORKER, "--check-config"], env=env, capture_output=True,
                                  text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertNotIn("placeholder", proc.stdout, "secret printed by --check-config")
        eff = {}
        for line in proc.stdout.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                eff[k] = v
        return eff

    def test_check_config_accepts_configmap(self):
        eff = self.effective_settings()
        self.assertEqual(eff["AW_REDIS_URL"], "redis://:****@redis-0.redis:6379/0")
        self.assertEqual(eff["AW_KAFKA_TOPICS"], "mparticle.audience")

    def test_grace_period_exceeds_shutdown_timeout(self):
        eff = self.effective_settings()
        shutdown_ms = int(eff["AW_SHUTDOWN_TIMEOUT_MS"])
        grace_s = self.pod["terminationGracePeriodSeconds"]
        self.assertGreater(grace_s * 1000, shutdown_ms)
        # Headroom for the steps after the drain (lease release, consumer close).
        self.assertGreaterEqual(grace_s * 1000 - shutdown_ms, 5000)

    def container_port(self, port):
        if isinstance(port, int):
            return port
        for p in self.container["ports"]:
            if p["name"] == port:
                return p["containerPort"]
        self.fail(f"named port {port} not declared")

    def test_probes(self):
        eff = self.effective_settings()
        http_port = int(eff["AW_HTTP_ADDR"].rsplit(":", 1)[1])
        self.assertEqual(http_port, 9464)
        expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz",
                    "startupProbe": "/healthz"}
        for probe, path in expected.items():
            p = self.container.get(probe)
            if probe == "startupProbe" and p is None:
                continue
            self.assertIsNotNone(p, probe)
            self.assertEqual(p["httpGet"]["path"], path, probe)
            self.assertEqual(self.container_port(p["httpGet"]["port"]), http_port, probe)
        svc = one(self.docs, "Service", "aw-worker-metrics")
        self.assertEqual(svc["spec"]["selector"], self.deployment["spec"]["selector"]["matchLabels"])
        for p in svc["spec"]["ports"]:
            self.assertEqual(self.container_port(p["targetPort"]), http_port)

    def test_replicas_pdb_resources_security(self):
        self.assertGreaterEqual(self.deployment["spec"]["replicas"], 2)
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        selector = self.deployment["spec"]["selector"]["matchLabels"]
        self.assertTrue(set(selector.items()) <= set(labels.items()))
        pdbs = resources(self.docs, "PodDisruptionBudget")
        self.assertTrue(any(p["spec"]["selector"]["matchLabels"] == selector and
                            p["spec"].get("minAvailable", 0) >= 1 for p in pdbs))
        for workload in (self.deployment, one(self.docs, "StatefulSet", "redis")):
            spec = workload["spec"]["template"]["spec"]
            self.assertTrue(spec["securityContext"]["runAsNonRoot"])
            for c in spec["containers"]:
                sc = c["securityContext"]
                self.assertTrue(sc["readOnlyRootFilesystem"], c["name"])
                self.assertFalse(sc["allowPrivilegeEscalation"], c["name"])
                self.assertIn("ALL", sc["capabilities"]["drop"], c["name"])
                self.assertIn("memory", c["resources"]["limits"], c["name"])
                self.assertIn("cpu", c["resources"]["requests"], c["name"])
        self.assertNotRegex(self.container["image"], r":latest$")

    def test_redis_durable(self):
        sts = one(self.docs, "StatefulSet", "redis")
        spec = sts["spec"]["template"]["spec"]
        c = spec["containers"][0]
        claims = [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]]
        data_mounts = [m for m in c["volumeMounts"] if m["name"] in claims]
        self.assertTrue(data_mounts, "Redis data not on a PVC")
        conf_cm = one(self.docs, "ConfigMap", "redis-config")
        conf = conf_cm["data"]["redis.conf"]
        directives = {}
        for line in conf.splitlines():
            parts = line.split(None, 1)
            if parts and not parts[0].startswith("#"):
                directives[parts[0].lower()] = parts[1].strip() if len(parts) > 1 else ""
        self.assertEqual(directives.get("appendonly"), "yes")
        # every acknowledged write on disk before the worker stores its Kafka offset
        self.assertEqual(directives.get("appendfsync"), "always")
        self.assertEqual(directives.get("maxmemory-policy"), "noeviction")
        self.assertIn(directives.get("dir"), [m["mountPath"] for m in data_mounts])
        cmd = " ".join(c.get("command", []) + c.get("args", []))
        self.assertIn("/etc/redis/redis.conf", cmd)
        self.assertIn("requirepass", cmd)
        self.assertNotIn("appendonly no", cmd)
        # The Redis Service selects the StatefulSet's pods.
        svc = one(self.docs, "Service", "redis")
        self.assertEqual(svc["spec"]["selector"], sts["spec"]["selector"]["matchLabels"])

    def test_dockerfile(self):
        with open(os.path.join(SRC, "Dockerfile"), encoding="utf-8") as f:
            text = f.read()
        self.assertIn("FROM debian:bookworm AS build", text)
        self.assertIn("FROM debian:bookworm-slim", text)
        self.assertIn("-DAW_WERROR=ON", text)
        self.assertIn("-DAW_BUILD_TESTS=OFF", text)
        self.assertRegex(text, r"(?m)^USER 10001")
        self.assertIn('ENTRYPOINT ["/usr/local/bin/aw-worker"]', text)
        # The Deployment's numeric user matches the image's.
        self.assertEqual(self.pod["securityContext"]["runAsUser"], 10001)


class CheckConfigCommandTest(unittest.TestCase):
    """aw-worker's admin commands: exit codes and masking as the deploy tooling relies on them."""

    def run_worker(self, args, extra_env):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AW_")}
        env.update(extra_env)
        return subprocess.run([WORKER] + args, env=env, capture_output=True, text=True, timeout=30)

    def test_problems_exit_78_without_secrets(self):
        proc = self.run_worker(["--check-config"], {
            "AW_REDIS_URL": "redis://:Sup3rSecretPw@redis:99999/0",
            "AW_FLUSH_MAX_QUEUE": "0", "AW_LOG_LEVEL": "chatty"})
        self.assertEqual(proc.returncode, 78)
        for name in ("AW_KAFKA_BROKERS:", "AW_REDIS_URL:", "AW_FLUSH_MAX_QUEUE:", "AW_LOG_LEVEL:"):
            self.assertIn(name, proc.stderr)
        self.assertIn("4 configuration problems", proc.stderr)
        self.assertNotIn("Sup3rSecretPw", proc.stderr + proc.stdout)

    def test_valid_prints_masked(self):
        proc = self.run_worker(["--check-config"], {
            "AW_KAFKA_BROKERS": "k:9092", "AW_REDIS_URL": "redis://:Sup3rSecretPw@redis:6379/1",
            "AW_FLUSH_MAX_QUEUE": "250", "AW_TYPO_VARIABLE": "1"})
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("AW_REDIS_URL=redis://:****@redis:6379/1\n", proc.stdout)
        self.assertIn("AW_FLUSH_MAX_QUEUE=250\n", proc.stdout)
        self.assertNotIn("Sup3rSecretPw", proc.stderr + proc.stdout)
        self.assertIn("AW_TYPO_VARIABLE is not a known variable", proc.stderr)

    def test_help_version_usage(self):
        self.assertEqual(self.run_worker(["--version"], {}).returncode, 0)
        helped = self.run_worker(["--help"], {})
        self.assertEqual(helped.returncode, 0)
        self.assertIn("AW_FLUSH_MAX_AGE_S", helped.stdout)
        self.assertEqual(self.run_worker(["--bogus"], {}).returncode, 64)


if __name__ == "__main__":
    unittest.main(verbosity=2)
