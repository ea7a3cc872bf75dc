"""Confluent's own Python client against a schema registry (herald's
stand-in): registers, fetches, looks up and checks a schema, serializes a
value with AvroSerializer (no auto-registration, a pinned id, as seed 004's
event bus sets it) and deserializes herald's bytes with AvroDeserializer.
Usage: confluent_ref.py URL CASE_JSON_FILE HERALD_HEX
Prints one JSON object with what it found."""
import io
import json
import sys

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

url, case_file, herald_hex = sys.argv[1], sys.argv[2], sys.argv[3]
case = json.load(open(case_file))
schema_str = json.dumps(case["schema"])
subject = case["subject"]
client = SchemaRegistryClient({"url": url})
out = {}

sid = client.register_schema(subject, Schema(schema_str, "AVRO"))
out["id"] = sid
out["id_again"] = client.register_schema(subject, Schema(schema_str, "AVRO"))
out["fetched"] = json.loads(client.get_schema(sid).schema_str)
latest = client.get_latest_version(subject)
out["latest"] = {"version": latest.version, "id": latest.schema_id}
out["lookup_id"] = client.lookup_schema(subject, Schema(schema_str, "AVRO")).schema_id
out["subjects"] = client.get_subjects()
out["versions"] = client.get_versions(subject)
out["compatible"] = client.test_compatibility(subject, Schema(json.dumps(case["compatible"]), "AVRO"))
out["incompatible"] = client.test_compatibility(subject, Schema(json.dumps(case["incompatible"]), "AVRO"))
try:
    client.get_schema(9999)
    out["unknown_id"] = "found"
except Exception as e:  # SchemaRegistryError
    out["unknown_id"] = getattr(e, "error_code", repr(e))

# The value, read from its Avro JSON encoding the way fastavro does.
parsed = fastavro.parse_schema(case["schema"])
value = list(fastavro.json_reader(io.StringIO(json.dumps(case["value"])), parsed))[0]
ctx = SerializationContext(case["topic"], MessageField.VALUE)
ser = AvroSerializer(
    client,
    schema_str,
    conf={"auto.register.schemas": False, "use.schema.id": sid},
)
out["serialized"] = ser(value, ctx).hex()

de = AvroDeserializer(client)
decoded = de(bytes.fromhex(herald_hex), ctx)
out["decoded"] = json.loads(json.dumps(decoded, default=str))
print(json.dumps(out))
