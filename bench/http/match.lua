-- POST /fhir/Patient/$match: Parameters bodies from the PROBES file (from `ridgeline bench population
-- --probes`), each a corrupted view of a registered person, in random order.
local token = os.getenv("TOKEN")
local bodies = {}
for line in io.lines(os.getenv("PROBES")) do bodies[#bodies + 1] = line end
init = function() math.randomseed(os.time()) end
request = function()
  return wrk.format("POST", "/fhir/Patient/$match",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/fhir+json"},
    bodies[math.random(#bodies)])
end
