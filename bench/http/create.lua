-- POST /fhir/Patient: bodies from the CREATES file (one Patient per line, from `ridgeline bench population
-- --creates`: new people and corrupted re-registrations of registered ones), taken in turn from a
-- per-thread offset, through the whole registration path: validation, matching against the registry,
-- durable write. The identifier value @SERIAL@ becomes unique per thread, run and request, so that every
-- request creates a record.
local token = os.getenv("TOKEN")
local bodies = {}
for line in io.lines(os.getenv("CREATES")) do bodies[#bodies + 1] = line end
local counter = 0
local tid = 0
local run = tostring(os.time())
setup = function(thread) tid = tid + 1; thread:set("tid", tid) end
init = function() counter = ((tid or 1) - 1) * 7919 end
request = function()
  counter = counter + 1
  local serial = string.format("%s-%d-%d", run, tid or 0, counter)
  local body = bodies[(counter % #bodies) + 1]:gsub("@SERIAL@", serial, 1)
  return wrk.format("POST", "/fhir/Patient",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/fhir+json"}, body)
end
