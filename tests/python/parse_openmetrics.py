"""Parses an OpenMetrics text exposition from stdin with the Prometheus project's own parser
(prometheus_client.openmetrics.parser, which refuses anything malformed: a missing `# EOF`, a
sample of no declared family, a bad label or value) and prints every sample as one JSON object
per line: {"family", "type", "name", "labels", "value"}.

Used by tests/integration/metrics.rs as an independent check of dbcert's /metrics.
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            print(
                json.dumps(
                    {
                        "family": family.name,
                        "type": family.type,
                        "name": sample.name,
                        "labels": sample.labels,
                        "value": sample.value,
                    }
                )
            )


if __name__ == "__main__":
    main()
