-- The 80/20 mix: 50% GET /products/{id}, 30% GET /products?limit=20, 20% POST /orders.
dofile("bench/wrk/report.lua")

-- Headers given to wrk.format replace wrk.headers: the key goes in again.
local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = wrk.headers["X-API-Key"]}

function request()
  local roll = math.random(1, 10)
  if roll <= 5 then
    return wrk.format("GET", "/products/" .. math.random(1, 1000))
  elseif roll <= 8 then
    return wrk.format("GET", "/products?limit=20")
  end
  local body = '{"product_id": ' .. math.random(1, 1000) .. ', "quantity": 1}'
  return wrk.format("POST", "/orders", headers, body)
end
