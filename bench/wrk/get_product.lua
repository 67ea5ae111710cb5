-- GET /products/{id} of a random product among the 1,000 seeded.
dofile("bench/wrk/report.lua")

function request()
  return wrk.format("GET", "/products/" .. math.random(1, 1000))
end
