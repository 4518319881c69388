-- wrk_report.lua: wrk -s script for scripts/bench_http.sh. Prints one machine-readable line
-- after the run, latencies in microseconds (wrk's own histogram):
--   BENCH requests=N duration_us=N errors=N non2xx=N p50=N p90=N p99=N p999=N max=N
-- errors counts connect/read/write/timeout errors; non2xx answers outside 200-399.
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"BENCH requests=%d duration_us=%d errors=%d non2xx=%d p50=%d p90=%d p99=%d p999=%d max=%d\n",
		summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
		latency:percentile(50), latency:percentile(90), latency:percentile(99),
		latency:percentile(99.9), latency.max))
end
