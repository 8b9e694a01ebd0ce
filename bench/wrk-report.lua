-- wrk hook: after the usual human-readable report, print one line that
-- run.sh parses, so it does not depend on wrk's text layout or units.
-- Latencies are in microseconds; socket errors = connect+read+write+timeout;
-- status errors = responses with a status >= 400 (wrk's "Non-2xx or 3xx").
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f status_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
