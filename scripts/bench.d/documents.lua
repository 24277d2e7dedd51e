-- wrk: GET the metadata documents of BENCH_PACKAGES packages in turn
-- (bench-pkg-N under BENCH_PREFIX, followed by BENCH_SUFFIX: npm's packuments,
-- PyPI's simple pages; or BENCH_PATH itself when set, for nginx's one static
-- file), with the Accept header of BENCH_ACCEPT; prints one JSON line when done.
local prefix = os.getenv("BENCH_PREFIX") or "/"
local suffix = os.getenv("BENCH_SUFFIX") or ""
local fixed = os.getenv("BENCH_PATH")
local packages = tonumber(os.getenv("BENCH_PACKAGES") or "1000")
local accept = os.getenv("BENCH_ACCEPT") or "application/json"
local counter = 0

function setup(thread)
    thread:set("offset", counter * 7919)
    counter = counter + 1
end

local n = 0
function request()
    n = n + 1
    local path = fixed or (prefix .. "bench-pkg-" .. ((offset + n) % packages) .. suffix)
    wrk.headers["Accept"] = accept
    return wrk.format("GET", path)
end

function done(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.status + summary.errors.timeout
    io.write(string.format(
        '{"rps": %.1f, "p50_ms": %.2f, "p99_ms": %.2f, "errors": %d, "bytes_per_s": %.0f}\n',
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, errors, summary.bytes / (summary.duration / 1e6)))
end
