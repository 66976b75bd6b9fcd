#!/usr/bin/env python3
"""Drives Ridgeline with a real third-party FHIR client: SMART on FHIR's
`fhirclient` (https://github.com/smart-on-fhir/client-py), R4 models.

It reads the CapabilityStatement, creates Patients through the models,
reads them back, searches (PDQm), follows a search's paging, and runs
$match, sending the bearer token the way any client does (a header on its
HTTP session). Run by tests/integration/test_fhirclient.c with
RL_FHIR_BASE (http://127.0.0.1:PORT/fhir/) and RL_TOKEN set.
Prints "fhirclient: ok" and exits 0 when every check holds.
"""
import os
import sys

from fhirclient import server as fhir_server
from fhirclient.models import bundle as b
from fhirclient.models import fhirdate
from fhirclient.models import humanname
from fhirclient.models import identifier
from fhirclient.models import patient as p


def check(cond, what):
    if not cond:
        print("fhirclient: FAILED: " + what, file=sys.stderr)
        sys.exit(1)


def make_patient(family, given, birth, gender, system, value):
    pat = p.Patient()
    name = humanname.HumanName()
    name.family = family
    name.given = [given]
    pat.name = [name]
    pat.birthDate = fhirdate.FHIRDate(birth)
    pat.gender = gender
    ident = identifier.Identifier()
    ident.system = system
    ident.value = value
    pat.identifier = [ident]
    return pat


def main():
    base = os.environ["RL_FHIR_BASE"]
    token = os.environ["RL_TOKEN"]
    smart = fhir_server.FHIRServer(None, base_uri=base)
    smart.session.headers["Authorization"] = "Bearer " + token

    # The CapabilityStatement, parsed by the client's own model.
    smart.get_capability()
    cs = smart.capabilityStatement
    check(cs is not None and cs.fhirVersion == "4.0.1", "CapabilityStatement fhirVersion 4.0.1")
    check(any(r.type == "Patient" for r in cs.rest[0].resource), "Patient in the CapabilityStatement")

    # Create (the model's own create: POST Patient), then read back by id.
    created = []
    people = [
        ("Okafor", "Ada", "1990-04-12", "female", "urn:clinic:kisumu", "K-1042"),
        ("Okafor", "Chidi", "1987-09-30", "male", "urn:clinic:kisumu", "K-1043"),
        ("Mwangi", "Joseph", "1971-02-03", "male", "urn:clinic:nakuru", "N-7"),
    ]
    for person in people:
        answer = make_patient(*person).create(smart)
        check(answer is not None and answer.get("resourceType") == "Patient" and answer.get("id"),
              "create answers the stored Patient")
        created.append(answer["id"])
    ada = p.Patient.read(created[0], smart)
    check(ada.name[0].family == "Okafor" and ada.name[0].given == ["Ada"], "read returns the name")
    check(ada.birthDate.isostring == "1990-04-12", "read returns the birth date")
    check(ada.link and ada.link[0].type == "refer", "a source record links to its golden record")

    # Update through the model (PUT Patient/{id}) and read the new version.
    ada.telecom = None
    ada.gender = "female"
    ada.name[0].given = ["Ada", "Ngozi"]
    ada.link = None
    ada.update(smart)
    again = p.Patient.read(created[0], smart)
    check(again.meta.versionId == "2", "update makes version 2")

    # PDQm search through the client's search API.
    found = p.Patient.where(struct={"family": "okafor"}).perform_resources(smart)
    check(len(found) == 2, "search family=okafor finds 2, found %d" % len(found))
    found = p.Patient.where(struct={"identifier": "urn:clinic:nakuru|N-7"}).perform_resources(smart)
    check(len(found) == 1 and found[0].name[0].family == "Mwangi", "search by identifier")
    found = p.Patient.where(struct={"birthdate": "ge1980", "gender": "male"}).perform_resources(smart)
    check(len(found) == 1 and found[0].name[0].given == ["Chidi"], "search by birthdate prefix and gender")
    bundle = p.Patient.where(struct={"family": "okafor", "_count": "1"}).perform(smart)
    check(bundle.total == 2 and len(bundle.entry) == 1, "paging: total 2, one entry per page")
    nxt = [l.url for l in bundle.link if l.relation == "next"]
    check(len(nxt) == 1, "paging: a next link")
    page2 = b.Bundle(smart.request_json(nxt[0]))
    check(len(page2.entry) == 1 and page2.entry[0].resource["id"] != bundle.entry[0].resource.id
          if isinstance(page2.entry[0].resource, dict) else
          page2.entry[0].resource.id != bundle.entry[0].resource.id, "paging: the next page is another record")

    # $match: the client has no helper for operations; its JSON POST is what apps use.
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": make_patient("Okafor", "Ada", "1990-04-12", "female",
                                                          "urn:other", "X").as_json()},
            {"name": "count", "valueInteger": 3},
        ],
    }
    res = smart.post_json("Patient/$match", params)
    result = b.Bundle(res.json())
    check(result.type == "searchset" and result.entry, "$match answers a searchset")
    best = result.entry[0]
    check(best.search.mode == "match" and 0 <= best.search.score <= 1, "$match entry has mode and score")
    grades = [e.valueCode for e in best.search.extension or []]
    check(grades and grades[0] in ("certain", "probable", "possible", "certainly-not"), "$match grade")

    # Without the token the client gets 401 (fhirclient raises its own exception).
    bare = fhir_server.FHIRServer(None, base_uri=base)
    try:
        p.Patient.read(created[0], bare)
        check(False, "a read without a token is refused")
    except fhir_server.FHIRUnauthorizedException:
        pass

    print("fhirclient: ok (%d patients, search, paging, update, $match)" % len(created))


if __name__ == "__main__":
    main()
