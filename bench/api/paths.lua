-- wrk script of bench/api: each request GETs a path drawn at random from a file (one path per
-- line, written by run.py: random customer ids, cities, search terms), with a bearer token.
-- Usage: wrk -t2 -c16 -d10s --latency -s bench/api/paths.lua http://127.0.0.1:PORT -- PATHS TOKEN
-- Prints one line `JSON {…}` at the end: requests, seconds, errors and latency percentiles (µs).

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local paths = {}

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  wrk.headers["Authorization"] = "Bearer " .. args[2]
  -- Each thread its own sequence, the same from run to run.
  math.randomseed(7919 * id)
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests": %d, "seconds": %.3f, "connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
    '"status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
