"""Checks charts/shoal with the real Helm SDK and Kubernetes' schemas.

Helm here is helm-python-sdk: ctypes bindings to Helm v4's Go SDK (the same
template engine, lint and values.schema.json validation as the helm CLI),
since no helm binary can be installed on our machines. Each value set is
linted (strict) and rendered; every rendered manifest is then validated by
kubernetes-validate --strict against each Kubernetes version below. The
rejected value set must fail the chart's schema.

Run by scripts/check-chart.sh, which installs both packages in a venv.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "shoal"
KUBE_VERSIONS = ["1.30.0", "1.33.0"]
ACCEPTED = [
    "ci/default-values.yaml",
    "ci/redis-ha-values.yaml",
    "ci/custom-registries-values.yaml",
    "ci/tls-values.yaml",
]
REJECTED = ["tests/rejected-values.yaml"]
# Kinds outside Kubernetes' own API, whose schemas kubernetes-validate does
# not carry; they are checked for the fields every object has.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}
RELEASE, NAMESPACE = "shoal", "shoal-system"


def values(name: str) -> dict:
    return yaml.safe_load((CHART / name).read_text()) or {}


def lint(name: str, vals: dict) -> list[str]:
    problems = []
    for kube in KUBE_VERSIONS:
        report = helm.lint(str(CHART), vals, strict=True, namespace=NAMESPACE, kube_version=f"v{kube}")
        # Severity 2 = warning, 3 = error; strict lint fails on both.
        problems += [f"lint ({kube}) {m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
        problems += [f"lint ({kube}): {e}" for e in report.get("errors") or []]
    return problems


def render(vals: dict) -> list[dict]:
    chart = helm.Chart.load(str(CHART))
    rendered = chart.render(vals, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                docs.append(doc)
    return docs


def validate(name: str, docs: list[dict]) -> list[str]:
    problems = []
    standard = []
    for doc in docs:
        kind = (doc.get("apiVersion"), doc.get("kind"))
        if kind in CUSTOM_KINDS:
            if not doc["metadata"].get("name") or not doc.get("spec"):
                problems.append(f"{kind}: missing metadata.name or spec")
        else:
            standard.append(doc)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, doc in enumerate(standard):
            path = Path(tmp) / f"{i:02}-{doc['kind']}.yaml"
            path.write_text(yaml.safe_dump(doc))
            files.append(str(path))
        for kube in KUBE_VERSIONS:
            result = subprocess.run(
                [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", kube, *files],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                problems.append(f"kubernetes-validate --strict {kube}:\n{result.stdout}{result.stderr}")
    return problems


def main() -> int:
    failures = check()
    total = len(ACCEPTED) + len(REJECTED)
    print(f"chart: {total - failures} passed, {failures} failed")
    return 1 if failures else 0


def check() -> int:
    """Checks every value set; returns how many failed."""
    failed = 0
    for name in ACCEPTED:
        vals = values(name)
        problems = lint(name, vals)
        docs = []
        try:
            docs = render(vals)
        except helm.HelmError as error:
            problems.append(f"render: {error}")
        if docs:
            problems += validate(name, docs)
        kinds = sorted({d["kind"] for d in docs})
        if problems:
            failed += 1
            print(f"FAIL {name}:\n  " + "\n  ".join(problems))
        else:
            print(f"ok   {name}: lint clean, {len(docs)} objects valid for Kubernetes {', '.join(KUBE_VERSIONS)} ({', '.join(kinds)})")
    for name in REJECTED:
        try:
            render(values(name))
        except helm.HelmValuesError as error:
            first = str(error).strip().splitlines()
            print(f"ok   {name}: rejected ({len(first)} lines, e.g. {first[-1].strip()})")
            continue
        except helm.HelmError as error:
            print(f"FAIL {name}: rejected by a template, not by the schema: {error}")
            failed += 1
            continue
        print(f"FAIL {name}: rendered, but must be rejected")
        failed += 1
    return failed


if __name__ == "__main__":
    sys.exit(main())
