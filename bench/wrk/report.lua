-- Shared by every case: the API key on every request (bench/servers.py), and at the end one
-- JSON line with the figures bench/run.py reads.
wrk.headers["X-API-Key"] = os.getenv("BENCH_API_KEY")

-- Latencies are in microseconds; errors are split by kind as wrk counts them.
function done(summary, latency, requests)
  io.write(string.format(
    '\nBENCH {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
