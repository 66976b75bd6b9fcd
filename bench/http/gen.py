#!/usr/bin/env python3
"""Synthetic FHIR Patients for the HTTP benchmark: N people, one per line
(NDJSON), identifier urn:bench:clinic|<n>, realistic name and birth date
spread so that blocking keys hold tens of records, not thousands.
usage: gen.py N OUT.ndjson [START]"""
import json
import random
import sys

FAMILY = ["Okafor", "Mwangi", "Otieno", "Achieng", "Kamau", "Wanjiru", "Odhiambo", "Njoroge", "Mutua", "Kiptoo",
          "Chebet", "Omondi", "Nyambura", "Wekesa", "Barasa", "Kariuki", "Muthoni", "Onyango", "Adhiambo", "Kimani",
          "Smith", "Johnson", "Garcia", "Nguyen", "Müller", "Rossi", "Dubois", "Silva", "Kowalski", "Ivanova",
          "Haddad", "Tanaka", "Chen", "Singh", "Patel", "Hassan", "Ali", "Mensah", "Boateng", "Diallo"]
GIVEN = ["Ada", "Joseph", "Mary", "Peter", "Grace", "John", "Faith", "David", "Mercy", "James", "Esther", "Daniel",
         "Ruth", "Samuel", "Joy", "Paul", "Alice", "Brian", "Lucy", "Kevin", "Ann", "Moses", "Sarah", "Isaac",
         "Naomi", "Victor", "Eunice", "Dennis", "Janet", "Collins", "Agnes", "George", "Lilian", "Felix", "Rose",
         "Amos", "Diana", "Patrick", "Irene", "Simon"]
CITY = ["Kisumu", "Nairobi", "Nakuru", "Eldoret", "Mombasa", "Thika", "Kitale", "Garissa", "Nyeri", "Machakos"]


def person(n, rng):
    g = "female" if rng.random() < 0.5 else "male"
    y, m, d = rng.randint(1930, 2020), rng.randint(1, 12), rng.randint(1, 28)
    return {"resourceType": "Patient",
            "identifier": [{"system": "urn:bench:clinic", "value": str(n)}],
            "name": [{"family": rng.choice(FAMILY) + ("" if rng.random() < 0.7 else "-" + rng.choice(FAMILY)),
                      "given": [rng.choice(GIVEN)] + ([rng.choice(GIVEN)] if rng.random() < 0.4 else [])}],
            "gender": g, "birthDate": "%04d-%02d-%02d" % (y, m, d),
            "telecom": [{"system": "phone", "value": "+2547%08d" % rng.randint(0, 99999999)}],
            "address": [{"city": rng.choice(CITY), "country": "KE"}]}


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    start = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    rng = random.Random(42 + start)
    with open(out, "w") as f:
        for i in range(start, start + n):
            f.write(json.dumps(person(i, rng), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
