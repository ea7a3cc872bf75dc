"""Confluent's Python JSON Schema serde against the registry stand-in:
registers a JSON Schema, deserializes herald's framed bytes with
JSONDeserializer (which validates them) and serializes the same value with
JSONSerializer (no auto-registration, the pinned id).
Usage: confluent_json_ref.py URL CASE_JSON_FILE HERALD_HEX"""
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

url, case_file, herald_hex = sys.argv[1], sys.argv[2], sys.argv[3]
case = json.load(open(case_file))
schema_str = json.dumps(case["schema"])
client = SchemaRegistryClient({"url": url})
out = {"id": client.register_schema(case["subject"], Schema(schema_str, "JSON"))}
ctx = SerializationContext(case["topic"], MessageField.VALUE)
de = JSONDeserializer(schema_str, schema_registry_client=client)
out["decoded"] = de(bytes.fromhex(herald_hex), ctx)
ser = JSONSerializer(
    schema_str, client, conf={"auto.register.schemas": False, "use.schema.id": out["id"]}
)
out["serialized"] = ser(case["value"], ctx).hex()
print(json.dumps(out))
