"""Schemathesis against the node's HTTP API, driven by its own OpenAPI document [issue 8].

Every operation gets generated requests (valid and invalid: wrong types,
odd strings, huge numbers, bad bodies) against a live solo node on
127.0.0.1. Zero 5xx, zero hangs (each request has a timeout), and the node
keeps serving afterwards.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from client.api.openapi import openapi_document
from tests.client.api.test_api_support import ApiThread

EXAMPLES = int(os.environ.get("LC_FUZZ_API_EXAMPLES", "25"))
SKIP = {"/wait"}  # long-poll: a generated 60 s timeout only measures patience


def test_no_server_errors_on_any_operation(tmp_path: Path) -> None:
    doc = openapi_document()
    schema = schemathesis.openapi.from_dict(doc)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    tried = 0
    with ApiThread(tmp_path) as api:
        prefix = doc.get("servers", [{"url": ""}])[0]["url"]
        base = api.url + prefix

        for operation in schema.get_all_operations():
            op = operation.ok()
            if op.path in SKIP:
                continue

            strategy = op.as_strategy()

            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(strategy)
            def run(case: schemathesis.Case) -> None:
                nonlocal tried
                tried += 1
                try:
                    response = case.call(base_url=base, timeout=10)
                except requests.exceptions.Timeout:
                    failures.append(f"{case.method} {case.formatted_path}: hang")
                    return
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} -> "
                                    f"{response.status_code}: {response.text[:200]}")

            run()
        status = requests.get(api.url + "/api/v1/status", timeout=5)
    assert tried > 100
    assert statuses[200] + statuses[201] + statuses[202] > 20, statuses  # reached real handlers
    assert sum(v for k, v in statuses.items() if 400 <= k < 500 and k != 404) > 20, statuses
    assert not failures, "\n".join(failures[:20])
    assert status.status_code == 200  # still serving
