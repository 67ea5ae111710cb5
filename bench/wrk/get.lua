-- GET of the URL given to wrk, unchanged (the bare app's `/`, `/products?limit=20`, ...).
dofile("bench/wrk/report.lua")
