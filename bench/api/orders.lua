-- wrk script of bench/api: each request POSTs a new order (a coffee, 12.34) for a customer drawn
-- at random from a file of ids (one per line, written by run.py), with a bearer token. External
-- ids are unique per run (RUN), thread and request, so every request creates an order (201).
-- Usage: wrk -t2 -c8 -d10s --latency -s bench/api/orders.lua http://127.0.0.1:PORT -- IDS TOKEN RUN
-- Prints one line `JSON {…}` at the end, as paths.lua.

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local ids = {}
local run = ""
local n = 0

function init(args)
  for line in io.lines(args[1]) do
    ids[#ids + 1] = line
  end
  run = args[3]
  wrk.headers["Authorization"] = "Bearer " .. args[2]
  wrk.headers["Content-Type"] = "application/json"
  math.randomseed(104729 * id)
end

function request()
  n = n + 1
  local body = string.format(
    '{"external_id": "bench-%s-%d-%d", "customer_id": %s, "ordered_at": "2026-11-30T10:00:00Z", ' ..
    '"channel": "app", "lines": [{"product": "美式咖啡", "category": "饮品", "unit_price_cents": 1234}]}',
    run, id, n, ids[math.random(#ids)])
  return wrk.format("POST", "/api/v1/orders", nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests": %d, "seconds": %.3f, "connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
    '"status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
