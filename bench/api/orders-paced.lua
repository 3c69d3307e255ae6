-- wrk script of bench/api: orders.lua's POSTs, each connection pausing PAUSE milliseconds after
-- every answer, so that the writers make a steady rate of orders (8 connections pausing 80 ms:
-- about 100 orders/s) rather than as many as the machine can.
-- Usage: wrk -t2 -c8 -d10s -s bench/api/orders-paced.lua http://127.0.0.1:PORT -- IDS TOKEN RUN PAUSE

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "orders.lua")

local pause = 0
local init_orders = init

function init(args)
  init_orders(args)
  pause = tonumber(args[4]) or 0
end

-- wrk calls delay() after each answer when the script defines it; the pause is not counted in
-- the request's latency.
function delay()
  return pause
end
