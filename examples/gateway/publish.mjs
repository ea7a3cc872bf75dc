// Seed 001's publishAsync(kafkaId, topic, value, key, headers) on fetch
// (Node 18+ or a browser): resolves with the gateway's answer once the
// event is durable in its spool; throws with the gateway's explanation on
// any non-2xx answer (no connection with fallback = "none", spool full,
// rate limit, bad token, unknown topic...).
//   node publish.mjs    (GATEWAY and TOKEN from the environment)

const GATEWAY = process.env.GATEWAY ?? "http://127.0.0.1:8080";
const TOKEN = process.env.TOKEN;

export async function publishAsync(kafkaId, topic, value, key, headers) {
  const url = `${GATEWAY}/v1/instances/${encodeURIComponent(kafkaId)}` +
    `/topics/${encodeURIComponent(topic)}/events`;
  const event = { value };
  if (key !== undefined && key !== null) event.key = key;
  if (headers) event.headers = headers;
  const answer = await fetch(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      ...(TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {}),
    },
    body: JSON.stringify(event),
  });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    const retry = answer.headers.get("retry-after");
    throw new Error(
      `publishAsync(${kafkaId}, ${topic}): ${answer.status} ${body.detail ?? answer.statusText}` +
        (retry ? ` (retry after ${retry} s)` : ""),
    );
  }
  return body; // {"ids": ["SPOOL_ID:SEQ"]}
}

// Seed 000's two event types; the keys come from the topics' pointers
// unless given here.
const occurrence = {
  payload_type: "occurrence",
  occurrence: { id: "0c1d2e3f", project_id: 42, fingerprint: ["js-error"], issue_title: "TypeError in cart.js" },
  event: { event_id: "5e6f7a8b", platform: "javascript" },
};
const statusChange = { payload_type: "status_change", project_id: 42, fingerprint: ["js-error"], new_status: "ignored" };

console.log(JSON.stringify(await publishAsync("main", "occurrences", occurrence, null, { "trace-id": "js-1" })));
console.log(JSON.stringify(await publishAsync("main", "status-changes", statusChange)));
try {
  await publishAsync("main", "no-such-topic", { x: 1 });
} catch (e) {
  console.log(`refused as expected: ${e.message}`);
}
