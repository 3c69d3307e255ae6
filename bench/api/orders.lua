-- wrk script of bench/api: each request POSTs a new order (a coffee, 12.34) for a customer drawn
-- at random from a file of ids (one per line, written by run.py), with a bearer token. External
-- ids are unique per run (RUN), thread and request, so every request creates an order (201).
-- Usage: wrk -t2 -c8 -d10s --latency -s bench/api/orders.lua http://127.0.0.1:PORT -- IDS TOKEN RUN
-- Prints one line `JSON {…}` at the end, as paths.lua.

-- setup() and done() (the JSON line) are common.lua's, next to this file.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

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
