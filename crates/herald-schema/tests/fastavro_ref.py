"""The reference for herald's JSON-to-Avro encoding: fastavro (what
Confluent's Python AvroSerializer writes with). Reads lines of
{"schema": ..., "value": <Avro JSON encoding>} on stdin and prints, per
line, the hex of fastavro's binary encoding, or "ERR <why>"."""
import io
import json
import sys

import fastavro

for line in sys.stdin:
    case = json.loads(line)
    try:
        schema = fastavro.parse_schema(case["schema"])
        records = list(fastavro.json_reader(io.StringIO(json.dumps(case["value"])), schema))
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, records[0])
        print(out.getvalue().hex())
    except Exception as e:  # noqa: BLE001 - reported to the Rust test
        print("ERR " + repr(e).replace("\n", " "))
    sys.stdout.flush()
