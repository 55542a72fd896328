"""Parses a Prometheus text exposition (standard input) with the Prometheus project's own Python
client parser, and prints what it read as JSON: one object per metric family. Any line the
parser cannot read fails the run (a non-zero exit and the parser's message)."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = []
for family in text_string_to_metric_families(sys.stdin.read()):
    families.append(
        {
            "name": family.name,
            "type": family.type,
            "help": family.documentation,
            "samples": [
                {"name": sample.name, "labels": sample.labels, "value": sample.value}
                for sample in family.samples
            ],
        }
    )
json.dump(families, sys.stdout)
