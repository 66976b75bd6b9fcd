-- POST /fhir/Patient: a new person per request (unique identifier per thread and counter),
-- through the whole registration path: validation, matching against the registry, durable write.
local token = os.getenv("TOKEN")
local families = {"Okafor", "Mwangi", "Otieno", "Achieng", "Kamau", "Wanjiru", "Smith", "Garcia", "Nguyen", "Singh"}
local givens = {"Ada", "Joseph", "Mary", "Peter", "Grace", "John", "Faith", "David", "Mercy", "James"}
local counter = 0
local tid = 0
setup = function(thread) tid = tid + 1; thread:set("tid", tid) end
init = function() math.randomseed(os.time() + (tid or 0) * 7919) end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"resourceType":"Patient","identifier":[{"system":"urn:bench:wrk","value":"%s-%d-%d-%d"}],' ..
    '"name":[{"family":"%s","given":["%s"]}],"gender":"%s","birthDate":"%04d-%02d-%02d"}',
    tostring(tid), os.time(), math.random(1, 1000000000), counter,
    families[math.random(#families)], givens[math.random(#givens)],
    math.random() < 0.5 and "female" or "male", math.random(1930, 2020), math.random(1, 12), math.random(1, 28))
  return wrk.format("POST", "/fhir/Patient",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/fhir+json"}, body)
end
