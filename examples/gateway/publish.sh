#!/usr/bin/env bash
# Publish seed 000's two event types with curl: an occurrence (accepted
# once durable in the gateway's spool: 202) and a status change (wait=true:
# 200 once Kafka acknowledged, with partition and offset).
#   GATEWAY  the gateway's URL (default http://127.0.0.1:8080)
#   TOKEN    a bearer token (from `herald gateway token`; none if unset)
set -euo pipefail
cd "$(dirname "$0")"
GATEWAY="${GATEWAY:-http://127.0.0.1:8080}"
AUTH=()
if [ -n "${TOKEN:-}" ]; then AUTH=(-H "Authorization: Bearer $TOKEN"); fi

# --fail-with-body: a non-2xx answer is an error, and its problem+json
# detail (what to do) is printed.
curl -sS --fail-with-body "${AUTH[@]}" -H 'Content-Type: application/json' \
  --data @occurrence.json "$GATEWAY/v1/instances/main/topics/occurrences/events"
echo
curl -sS --fail-with-body "${AUTH[@]}" -H 'Content-Type: application/json' \
  --data @status_change.json "$GATEWAY/v1/instances/main/topics/status-changes/events?wait=true"
echo
