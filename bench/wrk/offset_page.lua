-- GET of the URL given to wrk (a list of the 1,000 seeded products, `limit=20`, perhaps sorted)
-- at a random offset, 0–980: a client paging by offset lands anywhere, not on the first page.
dofile("bench/wrk/report.lua")

local path = wrk.path

function request()
  return wrk.format("GET", path .. "&offset=" .. math.random(0, 980))
end
