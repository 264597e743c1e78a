"""Usage: panel-queries.py PROMETHEUS_URL DASHBOARD.json...

Runs every panel and variable query of the dashboards on a live Prometheus (Grafana's
variables filled in as Grafana would) and fails naming each query Prometheus rejects."""

import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

base = sys.argv[1]
if not base.startswith(("http://", "https://")):
    sys.exit(f"PROMETHEUS_URL must be http(s): {base}")
failed = []
count = 0
for path in sys.argv[2:]:
    with open(path, encoding="utf-8") as handle:
        dashboard = json.load(handle)
    queries = [(f"${v['name']}", v["query"]) for v in dashboard["templating"]["list"]]
    queries += [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    for where, expr in queries:
        expr = re.sub(r"\$__(rate_)?interval", "1m", expr)
        expr = re.sub(r"\$\{?\w+\}?", ".*", expr)
        label = re.fullmatch(r"label_values\((.+), *(\w+)\)", expr.strip())
        if label:
            expr = f"count by ({label.group(2)}) ({label.group(1)})"
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        count += 1
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (checked above)
                status = json.load(answer)["status"]
        except urllib.error.HTTPError as error:
            status = f"HTTP {error.code}: {error.read()[:200]!r}"
        if status != "success":
            failed.append(f"{path} {where!r}: {expr} -> {status}")
if failed:
    sys.exit("\n".join(failed))
print(f"{count} queries ran on {base}")
