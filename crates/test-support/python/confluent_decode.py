"""Decode Confluent-wire-format messages with Confluent's own Python
deserializers against a schema registry: reads lines of hex on stdin, prints
each decoded value as a JSON line. Usage: confluent_decode.py URL avro|json TOPIC"""
import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

url, fmt, topic = sys.argv[1], sys.argv[2], sys.argv[3]
client = SchemaRegistryClient({"url": url})
if fmt == "avro":
    de = AvroDeserializer(client)
else:
    de = JSONDeserializer(None, schema_registry_client=client)
ctx = SerializationContext(topic, MessageField.VALUE)
for line in sys.stdin:
    line = line.strip()
    if line:
        print(json.dumps(de(bytes.fromhex(line), ctx), default=str))
        sys.stdout.flush()
