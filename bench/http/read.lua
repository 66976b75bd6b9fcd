-- GET /fhir/Patient/{id} over a list of record ids (IDS file, one per line), random order.
local ids = {}
for line in io.lines(os.getenv("IDS")) do ids[#ids + 1] = line end
local token = os.getenv("TOKEN")
math.randomseed(os.time())
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/fhir/Patient/" .. id, {["Authorization"] = "Bearer " .. token})
end
