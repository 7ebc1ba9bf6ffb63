"""Helm's own engine (helm-python-sdk: Helm's Go SDK behind a C ABI) for the tests.

    python scripts/helm.py render CHART VALUES.json OUTDIR [NAMESPACE]
        writes every rendered manifest to OUTDIR (one file per template)
    python scripts/helm.py lint CHART VALUES.json
        prints the strict lint report as JSON; exits 1 if it has errors or warnings
    python scripts/helm.py schema CHART VALUES.json
        exits 0 if the values pass values.schema.json, 1 (with the error) otherwise
"""
import json
import os
import sys

import helm_python as helm


def main(argv):
    command, chart_dir, values_file = argv[1], argv[2], argv[3]
    with open(values_file, encoding="utf-8") as f:
        values = json.load(f)
    if command == "render":
        out_dir, namespace = argv[4], (argv[5] if len(argv) > 5 else "securetunnel-system")
        chart = helm.Chart.load(chart_dir)
        manifests = chart.render(values, name="securetunnel-operator", namespace=namespace, is_install=True)
        os.makedirs(out_dir, exist_ok=True)
        written = 0
        for path, text in sorted(manifests.items()):
            if not path.endswith((".yaml", ".yml")) or not text.strip():
                continue
            name = path.replace("/", "_")
            with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
                f.write(text)
            written += 1
        print(written)
        return 0
    if command == "lint":
        report = helm.lint(chart_dir, values, strict=True, namespace="securetunnel-system", kube_version="v1.33.0")
        print(json.dumps(report))
        bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        return 1 if bad or report.get("errors") else 0
    if command == "schema":
        chart = helm.Chart.load(chart_dir)
        try:
            chart.validate_schema(values)
        except helm.HelmError as e:
            print(e)
            return 1
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
