-- POST /fhir/Patient/$match with demographics drawn like the registry's.
local token = os.getenv("TOKEN")
local families = {"Okafor", "Mwangi", "Otieno", "Achieng", "Kamau", "Wanjiru", "Odhiambo", "Njoroge", "Mutua",
                  "Kiptoo", "Smith", "Garcia", "Nguyen", "Singh", "Patel", "Hassan"}
local givens = {"Ada", "Joseph", "Mary", "Peter", "Grace", "John", "Faith", "David", "Mercy", "James"}
init = function() math.randomseed(os.time()) end
request = function()
  local body = string.format(
    '{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient",' ..
    '"name":[{"family":"%s","given":["%s"]}],"gender":"%s","birthDate":"%04d-%02d-%02d"}},' ..
    '{"name":"count","valueInteger":5}]}',
    families[math.random(#families)], givens[math.random(#givens)],
    math.random() < 0.5 and "female" or "male", math.random(1930, 2020), math.random(1, 12), math.random(1, 28))
  return wrk.format("POST", "/fhir/Patient/$match",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/fhir+json"}, body)
end
