-- wrk: every request a valid promotion. Each thread owns a slice of the seeded
-- versions (pkg<N> 1.0.0) and goes through it by a fixed stride: bench-a -> bench-b on the first
-- pass, back on the second, and so on, so no version is ever asked for twice at
-- once. The summary line is read by scripts/bench.
local threads = {}
local slice = tonumber(os.getenv("BENCH_SLICE") or "50000")
-- A prime that divides no slice size used, so the stride visits every version once a pass.
local STRIDE = 7919

function setup(thread)
    thread:set("index", #threads)
    table.insert(threads, thread)
end

function init(args)
    first = index * slice
    position = 0
    pass = 0
    key = os.getenv("BENCH_KEY")
end

function request()
    -- A stride through the slice rather than a walk: successive requests name
    -- versions far apart, as pgbench's random picks are, instead of neighbours
    -- on one heap and index page, which would contend for those pages.
    local n = first + (position * STRIDE) % slice
    local from, to = "bench-a", "bench-b"
    if pass % 2 == 1 then from, to = "bench-b", "bench-a" end
    position = position + 1
    if position == slice then position = 0; pass = pass + 1 end
    local body = string.format(
        '{"fromFeed":"%s","toFeed":"%s","name":"pkg%d","version":"1.0.0"}', from, to, n)
    return wrk.format("POST", "/api/promotions/promote",
        { ["Content-Type"] = "application/json", ["X-ApiKey"] = key }, body)
end

function done(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.status + summary.errors.timeout
    io.write(string.format("RESULT %.1f %.2f %.2f %.2f %d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        latency.max / 1000, errors))
end
