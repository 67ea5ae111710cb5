-- POST /orders: one line, quantity 1, of a random product among the 1,000 seeded (whose stock
-- is large enough never to run out).
dofile("bench/wrk/report.lua")

-- Headers given to wrk.format replace wrk.headers: the key goes in again.
local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = wrk.headers["X-API-Key"]}

function request()
  local body = '{"product_id": ' .. math.random(1, 1000) .. ', "quantity": 1}'
  return wrk.format("POST", "/orders", headers, body)
end
