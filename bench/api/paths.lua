-- wrk script of bench/api: each request GETs a path drawn at random from a file (one path per
-- line, written by run.py: random customer ids, cities, search terms), with a bearer token.
-- Usage: wrk -t2 -c16 -d10s --latency -s bench/api/paths.lua http://127.0.0.1:PORT -- PATHS TOKEN
-- Prints one line `JSON {…}` at the end: requests, seconds, errors and latency percentiles (µs).

-- setup() and done() (the JSON line) are common.lua's, next to this file.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

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
