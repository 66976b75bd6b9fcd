/* Unit tests of demographics/demo_model: features, levels, weights, guards, rules, stored features. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demographics/demo_model.h"
#include "demographics/demo_train.h"
#include "tests/harness.h"

static json_t *patient(const char *family, const char *given, const char *birth, const char *ssn)
{
    json_t *p = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:[s]}], s:s}", "resourceType", "Patient", "identifier",
                          "system", "urn:clinic", "value", "1", "name", "family", family, "given", given, "birthDate",
                          birth);
    if (ssn)
        json_array_append_new(json_object_get(p, "identifier"), json_pack("{s:s, s:s}", "system", "urn:ssn", "value", ssn));
    return p;
}

static void features(const demo_model *m, json_t *p, demo_features *f)
{
    rl_error *err = demo_features_extract(m, p, f);
    if (err)
        fail_msg("%s", rl_error_message(err));
    json_decref(p);
}

static void test_levels_weights_and_guards(void **state)
{
    demo_model *m = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    demo_features a, b, c, d;
    features(m, patient("O'Brien", "Sean", "1980-05-17", "1234567"), &a);
    features(m, patient("OBRIEN", "sean", "1980-05-17", NULL), &b);
    int lv[DEMO_F_COUNT];
    demo_compare_features(m, &a, &b, lv);
    assert_int_equal(lv[DEMO_F_FAMILY], 0);
    assert_int_equal(lv[DEMO_F_GIVEN], 0);
    assert_int_equal(lv[DEMO_F_BIRTH], 0);
    assert_int_equal(lv[DEMO_F_IDENTIFIER], DEMO_LEVEL_MISSING); /* missing counts zero */
    double w = demo_model_weight(m, &a, lv, NULL);
    assert_true(demo_model_probability(m, w) > 0.999);
    unsigned agrees = 0;
    assert_int_equal(demo_model_guard(m, &a, &b, lv, &agrees), 0);
    assert_int_equal(agrees, DEMO_GUARD_GIVEN | DEMO_GUARD_BIRTH);
    /* Twins: same family and birth date, another given name, no identifier: guarded. */
    features(m, patient("Okafor", "Chidi", "1990-01-02", NULL), &c);
    features(m, patient("Okafor", "Ngozi", "1990-01-02", NULL), &d);
    demo_compare_features(m, &c, &d, lv);
    assert_int_equal(lv[DEMO_F_GIVEN], 4);
    assert_int_equal(demo_model_guard(m, &c, &d, lv, &agrees), DEMO_GUARD_GIVEN);
    assert_int_equal(agrees, DEMO_GUARD_BIRTH);
    /* Names written the other way round count as exact. */
    features(m, patient("Sean", "OBrien", "1980-05-17", NULL), &c);
    demo_compare_features(m, &a, &c, lv);
    assert_int_equal(lv[DEMO_F_GIVEN], 0);
    assert_int_equal(lv[DEMO_F_FAMILY], 0);
    /* The other way round with a slip: read crosswise, at the level each side reaches. */
    features(m, patient("Ryan", "Chloe", "1945-07-12", NULL), &c);
    features(m, patient("Chloe", "Ryna", "1945-07-12", NULL), &d);
    demo_compare_features(m, &c, &d, lv);
    assert_int_equal(lv[DEMO_F_GIVEN], 0);
    assert_int_equal(lv[DEMO_F_FAMILY], 1);
    /* Not for names that merely share letters. */
    features(m, patient("Ryan", "Chloe", "1945-07-12", NULL), &c);
    features(m, patient("Chloe", "Sarah", "1945-07-12", NULL), &d);
    demo_compare_features(m, &c, &d, lv);
    assert_int_equal(lv[DEMO_F_GIVEN], 4);
    demo_model_free(m);
}

/* A Patient as a clinic would send it: family, given, birth date, gender, phone
 * (or NULL) and a second identifier (system and value, or NULLs), at one home. */
typedef struct person_fields {
    const char *family, *given, *birth, *gender, *phone, *id_system, *id;
} person_fields;

static json_t *person(const person_fields *f)
{
    json_t *p = patient(f->family, f->given, f->birth, NULL);
    json_object_set_new(p, "gender", json_string(f->gender));
    json_object_set_new(p, "address", json_pack("[{s:s, s:[s], s:s, s:s}]", "use", "home", "line", "12 Moi Avenue",
                                                "city", "Nakuru", "postalCode", "20100"));
    if (f->phone)
        json_object_set_new(p, "telecom", json_pack("[{s:s, s:s}]", "system", "phone", "value", f->phone));
    if (f->id)
        json_array_append_new(json_object_get(p, "identifier"),
                              json_pack("{s:s, s:s}", "system", f->id_system, "value", f->id));
    return p;
}

enum { G_BIRTH = DEMO_GUARD_BIRTH, G_GIVEN = DEMO_GUARD_GIVEN, G_BOTH = G_BIRTH | G_GIVEN };

/* The person at another house (a street line) in Nakuru. */
static json_t *at_house(const person_fields *f, const char *line)
{
    json_t *p = person(f);
    json_object_set_new(p, "address", json_pack("[{s:[s], s:s}]", "line", line, "city", "Nakuru"));
    return p;
}

/* People who share a home (12 Moi Avenue, Nakuru): family, given, birth date, gender, phone, identifier. */
static const person_fields
    wanjiru = {"Mwangi", "Wanjiru", "2019-05-14", "female", "0722 123 456", "urn:hospital:mrn", "100234"},
    njeri = {"Mwangi", "Njeri", "2019-05-14", "female", "0722123456", "urn:hospital:mrn", "100235"},
    njeri_no_mrn = {"Mwangi", "Njeri", "2019-05-14", "female", "0722123456", NULL, NULL},
    daniel = {"Otieno", "Daniel", "2004-09-01", "male", NULL, NULL, NULL},
    danielle = {"Otieno", "Danielle", "2004-09-01", "female", NULL, NULL, NULL},
    chidi = {"Okafor", "Chidi", "1990-01-02", "male", NULL, NULL, NULL},
    emeka_typo_family = {"Okafro", "Emeka", "1990-01-02", "male", NULL, NULL, NULL},
    emeka_typo_date = {"Okafor", "Emeka", "1990-01-20", "male", NULL, NULL, NULL},
    flynn = {"Cresp", "Flynn", "1976-11-17", "male", NULL, "urn:ssn", "2624663"},
    zac_digits_swapped = {"Cresp", "Zac", "1976-11-17", "male", NULL, "urn:ssn", "2624636"},
    zac_digit_mistyped = {"Cresp", "Zac", "1976-11-17", "male", NULL, "urn:ssn", "2624693"},
    flyn = {"Cresp", "Flyn", "1976-11-17", "male", NULL, NULL, NULL},
    john_sr = {"Kamau", "John", "1958-03-04", "male", "0733 000 111", NULL, NULL},
    john_jr = {"Kamau", "John Jr", "1986-11-20", "male", "0733 000 111", NULL, NULL},
    john_year_swapped = {"Kamau", "John", "1985-03-04", "male", NULL, NULL, NULL},
    john_no_date = {"Kamau", "John", "1900-01-01", "male", NULL, NULL, NULL}, /* a placeholder date */
    mary_1931 = {"Achieng", "Mary", "1931-06-02", "female", NULL, NULL, NULL},
    mary_1975 = {"Achieng", "Mary", "1975-06-02", "female", NULL, NULL, NULL},
    mary_1987 = {"Achieng", "Mary", "1987-06-02", "female", NULL, NULL, NULL},
    mary_1995 = {"Achieng", "Mary", "1995-01-17", "female", NULL, NULL, NULL},
    keaton_1994 = {"Webb", "Keaton", "1994-07-24", "male", NULL, NULL, NULL},
    keaton_1985 = {"Webb", "Keaton", "1985-03-28", "male", NULL, NULL, NULL},
    kamau_1980 = {"Kamau", "John", "1980-02-11", "male", NULL, "urn:national-id", "21453398"},
    kamau_1986 = {"Kamau", "John", "1986-09-30", "male", NULL, "urn:national-id", "24870015"};

/* In every case the weights alone reach auto-linking: where a guard fires, it is what stops it. */
static const struct guard_case {
    const char *what;
    const person_fields *a, *b;
    unsigned fired, agrees;
} guard_cases[] = {
    {"twin girls, the mother's phone, consecutive ward numbers", &wanjiru, &njeri, G_GIVEN, G_BIRTH},
    {"twin girls, the mother's phone", &wanjiru, &njeri_no_mrn, G_GIVEN, G_BIRTH},
    {"boy and girl twins whose names read as close", &daniel, &danielle, G_GIVEN, G_BOTH},
    {"twins, a slip in one's family name", &chidi, &emeka_typo_family, G_GIVEN, G_BIRTH},
    {"twins, a slip in one's birth date", &chidi, &emeka_typo_date, G_GIVEN, G_BIRTH},
    {"one man: another given name, two digits of his number swapped", &flynn, &zac_digits_swapped, 0, G_BOTH},
    {"one man: another given name, a digit of his number mistyped", &flynn, &zac_digit_mistyped, 0, G_BOTH},
    {"one man: a typo in his given name", &flynn, &flyn, 0, G_BOTH},
    {"father and son, one name (\"Jr\" is dropped), one phone", &john_sr, &john_jr, G_BIRTH, G_GIVEN},
    {"grandmother and the granddaughter named after her", &mary_1931, &mary_1995, G_BIRTH, G_GIVEN},
    {"mother and daughter, a generation apart to the day", &mary_1975, &mary_1987, G_BIRTH, G_GIVEN},
    {"dates less than a generation apart, nothing else says two: the weights decide", &keaton_1994, &keaton_1985, 0,
     G_GIVEN},
    {"cousins of one name and home, six years apart, national ids differ", &kamau_1980, &kamau_1986, G_BIRTH, G_GIVEN},
    {"two digits of the year swapped: a slip, not another generation", &john_sr, &john_year_swapped, 0, G_BOTH},
    {"no date on one side: nothing known about generations", &john_sr, &john_no_date, 0, G_GIVEN},
};

static void test_guards(void **state)
{
    demo_model *m = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    for (size_t i = 0; i < sizeof guard_cases / sizeof *guard_cases; i++) {
        const struct guard_case *c = &guard_cases[i];
        demo_features a, b;
        features(m, person(c->a), &a);
        features(m, person(c->b), &b);
        int lv[DEMO_F_COUNT];
        demo_compare_features(m, &a, &b, lv);
        unsigned agrees = 0, fired = demo_model_guard(m, &a, &b, lv, &agrees);
        double p = demo_model_probability(m, demo_model_weight(m, &a, lv, NULL));
        if (fired != c->fired || agrees != c->agrees || p < 0.9)
            fail_msg("%s: guards %u (want %u), agrees %u (want %u), p %.4f", c->what, fired, c->fired, agrees,
                     c->agrees, p);
    }
    /* "guards": false turns both rules off. */
    json_t *rules = json_pack("{s:b}", "guards", 0);
    demo_model *off = NULL;
    assert_null(demo_model_from_json(rules, NULL, &off));
    demo_features a, b;
    features(off, person(&john_sr), &a);
    features(off, person(&john_jr), &b);
    int lv[DEMO_F_COUNT];
    demo_compare_features(off, &a, &b, lv);
    unsigned agrees = 0;
    assert_int_equal(demo_model_guard(off, &a, &b, lv, &agrees), 0);
    json_decref(rules);
    demo_model_free(off);
    demo_model_free(m);
}

/* A model whose training found no families ("guards_lifted_at_home") lets the
 * weights decide pairs that share a family name and a home, and only those:
 * the same twins at another address are still held. The setting round-trips
 * through the rules document, and "learn_guards" says whether train may set it. */
static void test_guards_lifted_at_home(void **state)
{
    (void)state;
    demo_model *m = NULL;
    json_t *rules = json_pack("{s:b, s:b}", "guards_lifted_at_home", 1, "learn_guards", 1);
    assert_null(demo_model_from_json(rules, NULL, &m));
    json_decref(rules);
    assert_true(demo_model_guards_lifted_at_home(m));
    assert_true(demo_model_learns_guards(m));
    demo_features a, b;
    int lv[DEMO_F_COUNT];
    unsigned agrees = 0;
    /* Twins at one home (12 Moi Avenue): the weights decide. */
    features(m, person(&wanjiru), &a);
    features(m, person(&njeri_no_mrn), &b);
    demo_compare_features(m, &a, &b, lv);
    assert_true(demo_model_same_home(lv));
    assert_int_equal(demo_model_guard(m, &a, &b, lv, &agrees), 0);
    bool settled = true;
    assert_int_equal(demo_model_guard_shape(&a, &b, lv, &settled), G_GIVEN);
    assert_false(settled);
    /* Consecutive ward numbers settle nothing (twins numbered one after the other); one number mistyped does. */
    features(m, person(&wanjiru), &a);
    features(m, person(&njeri), &b);
    demo_compare_features(m, &a, &b, lv);
    assert_int_equal(demo_model_guard_shape(&a, &b, lv, &settled), G_GIVEN);
    assert_false(settled);
    features(m, person(&flynn), &a);
    features(m, person(&zac_digit_mistyped), &b);
    demo_compare_features(m, &a, &b, lv);
    assert_int_equal(demo_model_guard_shape(&a, &b, lv, &settled), G_GIVEN);
    assert_true(settled);
    /* Father and son at one home likewise. */
    features(m, person(&john_sr), &a);
    features(m, person(&john_jr), &b);
    demo_compare_features(m, &a, &b, lv);
    assert_int_equal(demo_model_guard(m, &a, &b, lv, &agrees), 0);
    /* The twins, one of them registered at another home: held. */
    json_t *elsewhere = person(&njeri_no_mrn);
    json_object_set_new(elsewhere, "address", json_pack("[{s:[s], s:s}]", "line", "7 Kenyatta Lane", "city", "Eldoret"));
    features(m, person(&wanjiru), &a);
    features(m, elsewhere, &b); /* takes it */
    demo_compare_features(m, &a, &b, lv);
    assert_false(demo_model_same_home(lv));
    assert_int_equal(demo_model_guard(m, &a, &b, lv, &agrees), G_GIVEN);
    /* The twins, one of them at another house on the same street, both with
     * ward numbers: held, unless the twins guard is lifted on the street. */
    features(m, person(&wanjiru), &a);
    features(m, at_house(&njeri, "14 Moi Avenue"), &b);
    demo_compare_features(m, &a, &b, lv);
    assert_false(demo_model_same_home(lv));
    assert_true(demo_model_same_street(lv));
    assert_int_equal(demo_model_guard(m, &a, &b, lv, &agrees), G_GIVEN);
    json_t *street_rules = json_pack("{s:[s]}", "guards_lifted_on_street", "twins");
    demo_model *street = NULL;
    assert_null(demo_model_from_json(street_rules, NULL, &street));
    json_decref(street_rules);
    assert_int_equal(demo_model_guards_lifted_on_street(street), G_GIVEN);
    assert_int_equal(demo_model_guard(street, &a, &b, lv, &agrees), 0);
    assert_int_equal(demo_model_guards_lifted_for(street, &a, &b, lv), G_GIVEN);
    json_t *street_doc = demo_model_to_json(street);
    json_t *names = json_object_get(street_doc, "guards_lifted_on_street");
    assert_int_equal(json_array_size(names), 1);
    assert_string_equal(json_string_value(json_array_get(names, 0)), "twins");
    json_decref(street_doc);
    /* The same twins without a ward number on one: nothing measured them, held. */
    features(street, person(&wanjiru), &a);
    features(street, at_house(&njeri_no_mrn, "14 Moi Avenue"), &b);
    demo_compare_features(street, &a, &b, lv);
    assert_true(demo_model_same_street(lv));
    assert_int_equal(demo_model_guard(street, &a, &b, lv, &agrees), G_GIVEN);
    /* Another generation on the street, both with national ids: the parent guard is not lifted by "twins". */
    demo_features older, younger;
    features(street, person(&kamau_1980), &older);
    features(street, at_house(&kamau_1986, "14 Moi Avenue"), &younger);
    int lv2[DEMO_F_COUNT];
    demo_compare_features(street, &older, &younger, lv2);
    assert_true(demo_model_same_street(lv2));
    assert_int_equal(demo_model_guard(street, &older, &younger, lv2, &agrees), G_BIRTH);
    demo_model *both = NULL;
    json_t *both_rules = json_pack("{s:[s, s]}", "guards_lifted_on_street", "parent", "twins");
    assert_null(demo_model_from_json(both_rules, NULL, &both));
    json_decref(both_rules);
    assert_int_equal(demo_model_guard(both, &older, &younger, lv2, &agrees), 0);
    demo_model_free(both);
    /* Elsewhere in town the twins guard holds still. */
    features(street, person(&wanjiru), &a);
    json_t *across_town = person(&njeri);
    json_object_set_new(across_town, "address", json_pack("[{s:[s], s:s}]", "line", "7 Kenyatta Lane", "city", "Eldoret"));
    features(street, across_town, &b);
    demo_compare_features(street, &a, &b, lv);
    assert_false(demo_model_same_street(lv));
    assert_int_equal(demo_model_guard(street, &a, &b, lv, &agrees), G_GIVEN);
    demo_model_free(street);
    /* Only a list of guard names. */
    const char *bad[] = {"{\"guards_lifted_on_street\": \"twins\"}", "{\"guards_lifted_on_street\": [\"cousins\"]}"};
    for (int i = 0; i < 2; i++) {
        json_t *r = json_loads(bad[i], 0, NULL);
        demo_model *x = NULL;
        rl_error *err = demo_model_from_json(r, NULL, &x);
        assert_non_null(err);
        assert_non_null(strstr(rl_error_message(err), "guards_lifted_on_street"));
        rl_error_free(err);
        assert_null(x);
        json_decref(r);
    }
    /* Round trip. */
    json_t *doc = demo_model_to_json(m);
    assert_true(json_is_true(json_object_get(doc, "guards_lifted_at_home")));
    assert_true(json_is_true(json_object_get(doc, "learn_guards")));
    demo_model *again = NULL;
    assert_null(demo_model_from_json(doc, NULL, &again));
    assert_true(demo_model_guards_lifted_at_home(again));
    json_decref(doc);
    demo_model_free(again);
    /* The defaults hold the guards everywhere; "learn_guards": false, or the guards off, keeps train out. */
    demo_model *d = NULL;
    assert_null(demo_model_defaults(NULL, &d));
    assert_false(demo_model_guards_lifted_at_home(d));
    assert_false(demo_model_guards_lifted_on_street(d));
    assert_false(demo_model_learns_guards_from_households(d)); /* opt-in */
    assert_true(demo_model_learns_guards_from_identifiers(d));  /* the default */
    /* Defaults are not written: a model saved with neither opens in builds from before them. */
    json_t *plain = demo_model_to_json(d);
    assert_null(json_object_get(plain, "learn_guards"));
    assert_null(json_object_get(plain, "learn_guards_from_identifiers"));
    assert_null(json_object_get(plain, "guards_lifted_at_home"));
    assert_null(json_object_get(plain, "guards_lifted_on_street"));
    json_decref(plain);
    features(d, person(&wanjiru), &a);
    features(d, person(&njeri_no_mrn), &b);
    demo_compare_features(d, &a, &b, lv);
    assert_int_equal(demo_model_guard(d, &a, &b, lv, &agrees), G_GIVEN);
    demo_model_free(d);
    const char *fixed[] = {"{\"learn_guards_from_identifiers\": false}",
                           "{\"learn_guards\": false, \"learn_guards_from_identifiers\": false}",
                           "{\"guards\": false, \"learn_guards\": true}"};
    for (int i = 0; i < 3; i++) {
        json_t *r = json_loads(fixed[i], 0, NULL);
        assert_null(demo_model_from_json(r, NULL, &d));
        assert_false(demo_model_learns_guards(d));
        demo_model_free(d);
        json_decref(r);
    }
    demo_model_free(m);
}

/* A person at a home (family, given, sex, birth date, street line, national id or NULL). */
static void at_home(const demo_model *m, const char *family, const char *given, const char *gender, const char *birth,
                    const char *line, const char *national_id, demo_features *out)
{
    json_t *p = patient(family, given, birth, NULL);
    json_object_set_new(p, "gender", json_string(gender));
    json_object_set_new(p, "address", json_pack("[{s:[s], s:s}]", "line", line, "city", "Kisumu"));
    if (national_id)
        json_array_append_new(json_object_get(p, "identifier"),
                              json_pack("{s:s, s:s}", "system", "urn:national-id", "value", national_id));
    features(m, p, out);
}

/* What train reads of households, case by case: pairs an identifier settles
 * are no evidence for the guards' pairs (but a household sharing one is still
 * a household), a family name counts once however many pairs it shows, and
 * an address on many records is no one's home. */
static void test_household_evidence(void **state)
{
    (void)state;
    demo_model *m = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    enum { N = 400 };
    demo_features *r = calloc(N, sizeof *r);
    size_t n = 0;
    char family[32], line[32], id[32];
    /* 8 families: father, mother and twins, the family's insurance number on the parents. */
    for (int h = 0; h < 8; h++) {
        snprintf(family, sizeof family, "Family%c", 'A' + h);
        snprintf(line, sizeof line, "%d Oginga Road", h + 1);
        snprintf(id, sizeof id, "F%d", h);
        at_home(m, family, "Peter", "male", "1970-01-02", line, id, &r[n++]);
        at_home(m, family, "Grace", "female", "1972-05-06", line, id, &r[n++]);
        at_home(m, family, "Brian", "male", "2010-03-04", line, NULL, &r[n++]);
        at_home(m, family, "Kevin", "male", "2010-03-04", line, NULL, &r[n++]);
    }
    /* 40 people entered twice under one national id and another given name: settled. */
    for (int i = 0; i < 40; i++) {
        snprintf(family, sizeof family, "Person%c%c", 'A' + i / 26, 'A' + i % 26);
        snprintf(line, sizeof line, "%d Kenyatta Lane", i + 1);
        snprintf(id, sizeof id, "N%d", 1000 + i * 7);
        at_home(m, family, "Joseph", "male", "1980-07-08", line, id, &r[n++]);
        at_home(m, family, "Samuel", "male", "1980-07-08", line, id, &r[n++]);
    }
    demo_household_evidence ev;
    assert_null(demo_household_evidence_of(m, r, n, &ev));
    assert_int_equal(ev.household_names, 8);
    assert_int_equal(ev.household_pairs, 8 * 5); /* every pair but the twins: the parents share their id */
    assert_int_equal(ev.twin_shaped, 8);
    assert_int_equal(ev.shaped_names, 8);
    assert_false(ev.lift);
    /* Two more family names, each one person entered 14 times under 14 names:
     * 182 twin-shaped pairs, which counted as pairs would outweigh the 40
     * household pairs 4 to 1; counted as family names, 10 against 8. */
    static const char *const names[] = {"Ann", "Beth", "Cleo", "Dora", "Eve",  "Faith", "Gail",
                                        "Hope", "Ivy", "Jane", "Kate", "Lulu", "Mona", "Zuri"};
    for (int k = 0; k < 14; k++) {
        at_home(m, "Manytimes", names[k], "female", "1990-09-09", "77 Moi Avenue", NULL, &r[n++]);
        at_home(m, "Oftenseen", names[k], "female", "1991-10-10", "78 Moi Avenue", NULL, &r[n++]);
    }
    assert_null(demo_household_evidence_of(m, r, n, &ev));
    assert_int_equal(ev.twin_shaped, 8 + 2 * 91);
    assert_int_equal(ev.shaped_names, 10);
    assert_false(ev.lift);
    /* 30 twin-shaped pairs at one address of many records (a hospital's): no one's home. */
    size_t before = n;
    for (int i = 0; i < 15; i++) {
        snprintf(family, sizeof family, "Ward%c", 'A' + i);
        at_home(m, family, "Zawadi", "female", "2001-02-03", "1 Hospital Road", NULL, &r[n++]);
        at_home(m, family, "Neema", "female", "2001-02-03", "1 Hospital Road", NULL, &r[n++]);
    }
    assert_null(demo_household_evidence_of(m, r, n, &ev));
    assert_int_equal(ev.crowded_addresses, 1);
    assert_int_equal(ev.shaped_names, 10);
    assert_int_equal(ev.records, before - 0);
    free(r);
    demo_model_free(m);
}

/* A family name of letters only (normalisation keeps no digits in names). */
static void letters_name(const char *prefix, int i, char *out, size_t size)
{
    snprintf(out, size, "%s%c%c%c", prefix, 'a' + i / 676 % 26, 'a' + i / 26 % 26, 'a' + i % 26);
}

/* One person entered twice on their street: the second record's given name,
 * birth date and national id as given (NULL: the first's). */
static void entered_twice(const demo_model *m, int i, const char *given2, const char *birth2, const char *id2,
                          demo_features *r, size_t *n)
{
    char family[32], line[32], id[32];
    letters_name("Kamau", i, family, sizeof family);
    snprintf(line, sizeof line, "%d Ngong Road", i + 1);
    snprintf(id, sizeof id, "%d", 20000000 + i * 37);
    at_home(m, family, "Joseph", "male", "1980-07-08", line, id, &r[(*n)++]);
    at_home(m, family, given2 ? given2 : "Joseph", "male", birth2 ? birth2 : "1980-07-08", line, id2 ? id2 : id,
            &r[(*n)++]);
}

/* What identifiers say of the guard-shaped pairs on a street: settled pairs
 * measure how often a given name or a birth date is replaced, pairs that agree
 * on both how often a number is; the guard-shaped pairs with another number
 * are compared with what those rates explain. A registry whose errors replace
 * values is told apart from one with twins in it. */
static void test_replacement_evidence(void **state)
{
    (void)state;
    demo_model *m = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    enum { N = 700 };
    demo_features *r = calloc(N, sizeof *r);
    size_t n = 0;
    int who = 0;
    for (int i = 0; i < 200; i++) /* the same twice */
        entered_twice(m, who++, NULL, NULL, NULL, r, &n);
    for (int i = 0; i < 40; i++) /* another given name, the number settles it */
        entered_twice(m, who++, "Samuel", NULL, NULL, r, &n);
    for (int i = 0; i < 40; i++) /* another number */
        entered_twice(m, who++, NULL, NULL, "99999999", r, &n);
    for (int i = 0; i < 20; i++) /* another birth date, the number settles it */
        entered_twice(m, who++, NULL, "1950-02-03", NULL, r, &n);
    for (int i = 0; i < 8; i++) /* another given name and another number: twin-shaped */
        entered_twice(m, who++, "Samuel", NULL, "88888888", r, &n);
    for (int i = 0; i < 2; i++) /* another birth date and another number: generation-shaped */
        entered_twice(m, who++, NULL, "1950-02-03", "77777777", r, &n);
    demo_household_evidence ev;
    assert_null(demo_household_evidence_of(m, r, n, &ev));
    const demo_replacement_evidence *e = &ev.replaced;
    assert_int_equal(e->settled_dated, 240);
    assert_int_equal(e->settled_renamed, 40);
    assert_int_equal(e->settled_named, 220);
    assert_int_equal(e->settled_redated, 20);
    assert_int_equal(e->alike, 240);
    assert_int_equal(e->alike_renumbered, 40);
    assert_int_equal(e->dated, 288);
    assert_int_equal(e->twin_observed, 8);
    assert_int_equal(e->generation_observed, 2);
    /* 288 * 40/240 * 40/240 = 8 twin-shaped pairs expected; (200+40+20+2) * 20/220 * 40/240. */
    assert_true(fabs(e->twin_expected - 8.0) < 1e-9);
    assert_true(fabs(e->generation_expected - 262.0 * 20 / 220 * 40 / 240) < 1e-9);
    assert_int_equal(e->enough, G_BOTH);
    assert_int_equal(e->explained, G_BOTH);
    /* Add 12 pairs of twins, each at their home, each with their own number:
     * 20 twin-shaped pairs against some 8.4 expected is more than chance. */
    for (int i = 0; i < 12; i++) {
        char family[32], line[32], id1[32], id2[32];
        letters_name("Twin", i, family, sizeof family);
        snprintf(line, sizeof line, "%d Moi Avenue", i + 1);
        snprintf(id1, sizeof id1, "%d", 30000000 + i * 101);
        snprintf(id2, sizeof id2, "%d", 51234567 + i * 103);
        at_home(m, family, "Akinyi", "female", "2012-04-05", line, id1, &r[n++]);
        at_home(m, family, "Atieno", "female", "2012-04-05", line, id2, &r[n++]);
    }
    assert_null(demo_household_evidence_of(m, r, n, &ev));
    assert_int_equal(e->twin_observed, 20);
    assert_int_equal(e->enough, G_BOTH);
    assert_int_equal(e->explained, G_BIRTH); /* the parent guard's 2 pairs are still explained */
    /* A family name too common to pair whole (300 records) is paired city by
     * city: the twins of one of its families, in Kisumu, are still seen. */
    demo_features *common = calloc(N, sizeof *common);
    size_t nc = 0;
    for (int i = 0; i < 300; i++) {
        char line[32], id[32];
        snprintf(line, sizeof line, "%d Ngong Road", i + 1);
        snprintf(id, sizeof id, "%d%d", 1000 + i, 9000 - i);
        char birth[16]; /* any two differ in two fields at least: none is twin-shaped */
        snprintf(birth, sizeof birth, "%d-%02d-%02d", 1930 + i % 70, 1 + i % 12, 1 + (i / 12) % 28);
        json_t *p = patient("Otieno", i % 2 ? "Brian" : "Mercy", birth, NULL);
        json_object_set_new(p, "gender", json_string(i % 2 ? "male" : "female"));
        json_object_set_new(p, "address", json_pack("[{s:[s], s:s}]", "line", line, "city",
                                                    i % 3 == 0 ? "Kisumu" : i % 3 == 1 ? "Nakuru" : "Eldoret"));
        json_array_append_new(json_object_get(p, "identifier"),
                              json_pack("{s:s, s:s}", "system", "urn:national-id", "value", id));
        features(m, p, &common[nc++]);
    }
    at_home(m, "Otieno", "Akinyi", "female", "2012-04-05", "900 Ngong Road", "55512345", &common[nc++]);
    at_home(m, "Otieno", "Atieno", "female", "2012-04-05", "900 Ngong Road", "77798765", &common[nc++]);
    assert_null(demo_household_evidence_of(m, common, nc, &ev));
    assert_int_equal(ev.crowded_names, 0);
    assert_int_equal(ev.twin_shaped, 1);
    assert_int_equal(e->twin_observed, 1);
    free(common);
    /* Without identifiers nothing is measured and nothing lifted. */
    demo_features *bare = calloc(N, sizeof *bare);
    size_t nb = 0;
    for (int i = 0; i < 300; i++) {
        char family[32], line[32];
        letters_name("Otieno", i, family, sizeof family);
        snprintf(line, sizeof line, "%d Ngong Road", i + 1);
        at_home(m, family, "Joseph", "male", "1980-07-08", line, NULL, &bare[nb++]);
        at_home(m, family, i % 10 ? "Joseph" : "Samuel", "male", "1980-07-08", line, NULL, &bare[nb++]);
    }
    assert_null(demo_household_evidence_of(m, bare, nb, &ev));
    assert_int_equal(e->dated, 0);
    assert_int_equal(e->enough, 0);
    assert_int_equal(e->explained, 0);
    /* Too few replacements to matter: 200 clean pairs and one of each kind expect under one shaped pair. */
    nb = 0;
    for (int i = 0; i < 200; i++)
        entered_twice(m, i, NULL, NULL, NULL, bare, &nb);
    entered_twice(m, 200, "Samuel", NULL, NULL, bare, &nb);
    entered_twice(m, 201, NULL, NULL, "99999999", bare, &nb);
    entered_twice(m, 202, NULL, "1950-02-03", NULL, bare, &nb);
    assert_null(demo_household_evidence_of(m, bare, nb, &ev));
    assert_int_equal(e->enough, 0);
    assert_int_equal(e->explained, 0);
    /* Birth dates replaced often, given names never: the parent guard's pairs
     * are explained, and two pairs of twins, with none expected, keep the
     * twins guard (the allowance alone would pass two). */
    nb = 0;
    who = 0;
    for (int i = 0; i < 200; i++)
        entered_twice(m, who++, NULL, NULL, NULL, bare, &nb);
    for (int i = 0; i < 40; i++)
        entered_twice(m, who++, NULL, "1950-02-03", NULL, bare, &nb);
    for (int i = 0; i < 40; i++)
        entered_twice(m, who++, NULL, NULL, "99999999", bare, &nb);
    for (int i = 0; i < 6; i++)
        entered_twice(m, who++, NULL, "1950-02-03", "77777777", bare, &nb);
    for (int i = 0; i < 2; i++)
        entered_twice(m, who++, "Samuel", NULL, "88888888", bare, &nb);
    assert_null(demo_household_evidence_of(m, bare, nb, &ev));
    assert_int_equal(e->twin_observed, 2);
    assert_true(e->twin_expected == 0);
    assert_int_equal(e->generation_observed, 6);
    assert_true(e->generation_expected >= DEMO_REPLACED_MIN_EXPECTED);
    assert_int_equal(e->enough, G_BIRTH);
    assert_int_equal(e->explained, G_BIRTH);
    free(bare);
    free(r);
    demo_model_free(m);
}

/* What corroborates a link beyond names, level by level; "corroboration": false turns the rule off. */
static void test_corroboration(void **state)
{
    demo_model *m = NULL, *off = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    int lv[DEMO_F_COUNT];
    for (int f = 0; f < DEMO_F_COUNT; f++)
        lv[f] = DEMO_LEVEL_MISSING;
    lv[DEMO_F_GIVEN] = lv[DEMO_F_FAMILY] = lv[DEMO_F_GENDER] = lv[DEMO_F_CITY] = lv[DEMO_F_STATE] = 0;
    assert_false(demo_model_corroborated(m, lv));
    lv[DEMO_F_BIRTH] = 3; /* the same year alone */
    assert_false(demo_model_corroborated(m, lv));
    lv[DEMO_F_BIRTH] = 2; /* one field off by a slip */
    assert_true(demo_model_corroborated(m, lv));
    lv[DEMO_F_BIRTH] = 4;
    lv[DEMO_F_POSTCODE] = 1; /* one edit away */
    lv[DEMO_F_ADDRESS] = 2;  /* similar */
    lv[DEMO_F_PHONE] = 1;
    lv[DEMO_F_IDENTIFIER] = 2;
    assert_false(demo_model_corroborated(m, lv));
    const struct { demo_field field; int level; } yes[] = {
        {DEMO_F_ADDRESS, 1}, {DEMO_F_POSTCODE, 0}, {DEMO_F_PHONE, 0}, {DEMO_F_IDENTIFIER, 1}, {DEMO_F_BIRTH, 0}};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        int saved = lv[yes[i].field];
        lv[yes[i].field] = yes[i].level;
        assert_true(demo_model_corroborated(m, lv));
        lv[yes[i].field] = saved;
    }
    /* The other half: contact details alone (a household's phone, address, postcode) name no one. */
    int contact[DEMO_F_COUNT];
    for (int f = 0; f < DEMO_F_COUNT; f++)
        contact[f] = DEMO_LEVEL_MISSING;
    contact[DEMO_F_PHONE] = contact[DEMO_F_ADDRESS] = contact[DEMO_F_POSTCODE] = contact[DEMO_F_CITY] = 0;
    contact[DEMO_F_GENDER] = 0;
    contact[DEMO_F_GIVEN] = 3; /* a given name that is not close */
    contact[DEMO_F_FAMILY] = 2;
    contact[DEMO_F_BIRTH] = 3; /* the same year alone */
    contact[DEMO_F_IDENTIFIER] = 2;
    assert_true(demo_model_corroborated(m, contact));
    assert_false(demo_model_named(m, contact));
    const struct { demo_field field; int level; } names[] = {
        {DEMO_F_GIVEN, 2}, {DEMO_F_FAMILY, 1}, {DEMO_F_BIRTH, 2}, {DEMO_F_IDENTIFIER, 1}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        int saved = contact[names[i].field];
        contact[names[i].field] = names[i].level;
        assert_true(demo_model_named(m, contact));
        contact[names[i].field] = saved;
    }
    json_t *rules = json_pack("{s:b}", "corroboration", 0);
    assert_null(demo_model_from_json(rules, NULL, &off));
    assert_true(demo_model_corroborated(off, lv));
    assert_true(demo_model_named(off, contact));
    json_decref(rules);
    demo_model_free(off);
    demo_model_free(m);
}

/* How many blocking keys two records share under the built-in rules. */
static int shared_keys(const demo_model *m, json_t *pa, json_t *pb)
{
    demo_features a, b;
    features(m, pa, &a);
    features(m, pb, &b);
    json_t *ka = json_array(), *kb = json_array();
    assert_null(demo_model_blocking_keys(m, &a, ka));
    assert_null(demo_model_blocking_keys(m, &b, kb));
    int shared = 0;
    size_t i, j;
    json_t *x, *y;
    json_array_foreach(ka, i, x) json_array_foreach(kb, j, y) shared += json_equal(x, y);
    json_decref(ka);
    json_decref(kb);
    return shared;
}

static void test_blocking_keys(void **state)
{
    demo_model *m = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    /* Names written the other way round, with the postcode and date mistyped: still proposed. */
    person_fields swapped = {"Wanjiru", "Mwangi", "2019-05-15", "female", NULL, NULL, NULL};
    json_t *moved = person(&swapped);
    json_object_set_new(json_array_get(json_object_get(moved, "address"), 0), "postalCode", json_string("20010"));
    assert_int_equal(shared_keys(m, person(&wanjiru), moved), 1);
    /* Another given name, the family name and postcode mistyped: the birth date in the same town finds it. */
    person_fields typos = {"Mwangl", "Wanjiru", "2019-05-14", "female", NULL, NULL, NULL};
    json_t *other = person(&typos);
    json_object_set_new(json_array_get(json_object_get(other, "address"), 0), "postalCode", json_string("21000"));
    assert_int_equal(shared_keys(m, person(&njeri_no_mrn), other), 1);
    demo_model_free(m);
}

/* The keys' text itself: stores keep postings under it, so a new version must
 * write what the last one wrote (every part, values that repeat). */
static void test_blocking_key_text(void **state)
{
    json_t *rules = json_loads("{\"blocking\": [[\"family_metaphone\", \"birth_year\"], [\"given_metaphone\", "
                               "\"birth_date\"], [\"family_soundex\"], [\"given_soundex\"], [\"given_initial\", "
                               "\"birth_month_day\"], [\"postcode\", \"phone\"], [\"identifier\"], "
                               "[\"identifier_head\", \"city\"], [\"identifier_tail\"], [\"names\"], [\"city\"], "
                               "[\"postcode\"], [\"phone\", \"identifier\"], [\"given_initial\"], [\"birth_year\"]]}",
                               0, NULL);
    demo_model *m = NULL;
    assert_null(demo_model_from_json(rules, NULL, &m));
    json_t *p = patient("Mwangi", "Wanjiru", "2019-05-04", "SN-99812");
    json_object_set_new(p, "telecom", json_pack("[{s:s, s:s}, {s:s, s:s}]", "system", "phone", "value",
                                                "0722 000 111", "system", "phone", "value", "+254 733 123456"));
    json_object_set_new(p, "address", json_pack("[{s:s, s:s}]", "city", "Nakuru", "postalCode", "20100"));
    demo_features f;
    features(m, p, &f);
    json_t *keys = json_array();
    assert_null(demo_model_blocking_keys(m, &f, keys));
    const char *want[] = {
        "fs0|MNJ|2019", "fs1|ANJR|20190504", "fs2|M520", "fs3|W526", "fs4|w|0504", "fs5|20100|722000111",
        "fs5|20100|+254733123456", "fs6|urn:ssn|SN99812", "fs7|urn:ssn|hSN99|nakuru", "fs8|urn:ssn|t812",
        "fs9|ANJR|MNJ", "fs10|nakuru", "fs11|20100", "fs12|722000111|urn:ssn|SN99812", "fs13|w", "fs14|2019",
    };
    size_t n = sizeof want / sizeof *want;
    for (size_t i = 0; i < n || i < json_array_size(keys); i++) {
        const char *got = json_string_value(json_array_get(keys, i));
        if (!got || i >= n || strcmp(got, want[i]) != 0)
            fail_msg("key %zu: %s, expected %s", i, got ? got : "(none)", i < n ? want[i] : "(none)");
    }
    json_decref(keys);
    json_decref(rules);
    demo_model_free(m);
}

static void test_stored_features_round_trip(void **state)
{
    demo_model *m = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    demo_features a, back;
    features(m, patient("Ndiaye", "Awa Marie", "1975-03", "SN-998"), &a);
    rl_buf bytes;
    rl_buf_init(&bytes, 1 << 16);
    assert_null(demo_features_encode(m, &a, &bytes));
    assert_true(bytes.len < 200); /* compact: not the 2.5 KB struct */
    assert_null(demo_features_decode(m, bytes.data, bytes.len, &back));
    assert_memory_equal(&a, &back, sizeof a);

    /* Other rules made other features: refused, so the caller prepares afresh. */
    json_t *rules = json_pack("{s:s}", "country_code", "221");
    demo_model *other = NULL;
    assert_null(demo_model_from_json(rules, NULL, &other));
    rl_error *err = demo_features_decode(other, bytes.data, bytes.len, &back);
    assert_int_equal(rl_error_code(err), RL_ECONFLICT);
    rl_error_free(err);
    /* Damage is caught, never read past. */
    for (size_t cut = 0; cut < bytes.len; cut += 3) {
        err = demo_features_decode(m, bytes.data, cut, &back);
        assert_non_null(err);
        rl_error_free(err);
    }
    json_decref(rules);
    demo_model_free(other);
    rl_buf_free(&bytes);
    demo_model_free(m);
}

static void test_rules_validation(void **state)
{
    const char *bad[] = {
        "{\"prior\": 2}", "{\"fields\": {\"given\": {\"m\": [0.5]}}}", "{\"fields\": {\"shoe_size\": {}}}",
        "{\"blocking\": [[\"zodiac\"]]}", "{\"country_code\": \"+254\"}", "{\"guards\": \"yes\"}", "{\"learn_guards\": 1}", "{\"guards_lifted_at_home\": \"no\"}", "{\"corroboration\": 1}", "{\"colour\": 1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *r = json_loads(bad[i], 0, NULL);
        demo_model *m = NULL;
        rl_error *err = demo_model_from_json(r, NULL, &m);
        if (!err)
            fail_msg("accepted rules %s", bad[i]);
        assert_int_equal(rl_error_code(err), RL_EINVAL);
        assert_null(m);
        rl_error_free(err);
        json_decref(r);
    }
    /* The model's own JSON is valid rules and gives the same model. */
    demo_model *m = NULL, *again = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    json_t *j = demo_model_to_json(m);
    assert_null(demo_model_from_json(j, NULL, &again));
    json_t *j2 = demo_model_to_json(again);
    assert_true(json_equal(j, j2));
    json_decref(j);
    json_decref(j2);
    demo_model_free(m);
    demo_model_free(again);
}

/* A field's weight is log2(m / u) of its level under the model's own parameters, whichever way
 * they were set: defaults, rules, or a trained copy (the weights are made once per model). */
static void expect_weights(const demo_model *m)
{
    const demo_field_params *params = demo_model_params(m);
    demo_features a;
    memset(&a, 0, sizeof a);
    for (int f = 0; f < DEMO_F_COUNT; f++)
        for (int l = 0; l < demo_model_nlevels((demo_field)f); l++) {
            if (l == 0 && params[f].tf)
                continue; /* weighed by the value's frequency */
            int lv[DEMO_F_COUNT];
            for (int g = 0; g < DEMO_F_COUNT; g++)
                lv[g] = DEMO_LEVEL_MISSING;
            lv[f] = l;
            double w[DEMO_F_COUNT];
            double total = demo_model_weight(m, &a, lv, w);
            assert_true(total == log2(params[f].m[l] / params[f].u[l]));
            assert_true(w[f] == total);
        }
}

static void test_weights_follow_params(void **state)
{
    (void)state;
    demo_model *m = NULL, *trained = NULL, *ruled = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    expect_weights(m);
    demo_field_params params[DEMO_F_COUNT];
    memcpy(params, demo_model_params(m), sizeof params);
    for (int f = 0; f < DEMO_F_COUNT; f++)
        for (int l = 0; l < demo_model_nlevels((demo_field)f); l++) {
            params[f].m[l] = 0.9 / (l + 1);
            params[f].u[l] = 0.001 * (l + 1) * (f + 1);
        }
    assert_null(demo_model_with_params(m, params, 0.001, &trained));
    expect_weights(trained);
    assert_true(demo_model_params(trained)[DEMO_F_FAMILY].u[1] == params[DEMO_F_FAMILY].u[1]);
    json_t *rules = json_pack("{s:{s:{s:[f,f,f,f], s:[f,f,f,f]}}}", "fields", "family", "m", 0.7, 0.2, 0.05, 0.05,
                              "u", 0.01, 0.02, 0.07, 0.9);
    rl_error *err = demo_model_from_json(rules, NULL, &ruled);
    if (err)
        fail_msg("%s", rl_error_message(err));
    json_decref(rules);
    assert_true(demo_model_params(ruled)[DEMO_F_FAMILY].u[2] == 0.07);
    expect_weights(ruled);
    demo_model_free(m);
    demo_model_free(trained);
    demo_model_free(ruled);
}

/* n records of men named Sam, each with his own family name and birth date. */
static demo_features *sams(const demo_model *m, int n)
{
    demo_features *r = calloc((size_t)n, sizeof *r);
    for (int i = 0; i < n; i++) {
        char family[16], birth[32];
        snprintf(family, sizeof family, "Fam%c%c", 'a' + i % 26, 'a' + i / 26);
        snprintf(birth, sizeof birth, "%d-%02d-%02d", 1930 + i, 1 + i % 12, 1 + i % 28);
        json_t *p = patient(family, "Sam", birth, NULL);
        json_object_set_new(p, "gender", json_string("male"));
        features(m, p, &r[i]);
    }
    return r;
}

/* Evidence for u is counted in distinct pairs: ten records make 45, however
 * many times they are drawn, too few to replace a prior; sixty make 1,770,
 * and a level never seen among them (a given name that differs) is blended
 * with its prior, not made almost impossible. */
static void test_train_u_counts_distinct_pairs(void **state)
{
    (void)state;
    demo_model *m = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    const demo_field_params *priors = demo_model_params(m);
    demo_features *r = sams(m, 60);
    demo_field_params params[DEMO_F_COUNT];
    demo_train_notes notes;
    memcpy(params, priors, sizeof params);
    assert_null(demo_estimate_u(m, r, NULL, 10, 400000, 1, params, &notes));
    assert_true(notes.u[DEMO_F_GIVEN].pairs == 45);
    assert_non_null(notes.u[DEMO_F_GIVEN].kept);
    assert_non_null(notes.u[DEMO_F_GENDER].kept);
    assert_non_null(notes.u[DEMO_F_PHONE].kept); /* nobody has one */
    assert_memory_equal(params, priors, sizeof params);
    /* Fewer draws than pairs: the pairs drawn twice count once. */
    assert_null(demo_estimate_u(m, r, NULL, 60, 1000, 1, params, &notes));
    assert_true(notes.u[DEMO_F_GIVEN].pairs < 1000);
    assert_non_null(notes.u[DEMO_F_GIVEN].kept);
    assert_null(demo_estimate_u(m, r, NULL, 60, 400000, 1, params, &notes));
    assert_true(notes.u[DEMO_F_GIVEN].pairs == 1770);
    assert_null(notes.u[DEMO_F_GIVEN].kept);
    assert_null(notes.u[DEMO_F_GENDER].kept);
    int last = demo_model_nlevels(DEMO_F_GIVEN) - 1;
    /* Every pair agrees on the given name, yet a different one still counts against a match. */
    assert_true(params[DEMO_F_GIVEN].u[0] > priors[DEMO_F_GIVEN].u[0]);
    assert_true(params[DEMO_F_GIVEN].m[last] / params[DEMO_F_GIVEN].u[last] < 0.5);
    assert_true(params[DEMO_F_GENDER].m[1] / params[DEMO_F_GENDER].u[1] < 0.5);
    free(r);
    demo_model_free(m);
}

/* No estimate may turn a field over: a level weighing less than disagreement is
 * pooled with it (m's total kept), and a field whose disagreement would count
 * for a match keeps its priors. */
static void test_train_keeps_levels_in_order(void **state)
{
    (void)state;
    demo_model *m = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    const demo_field_params *priors = demo_model_params(m);
    demo_field_params params[DEMO_F_COUNT];
    memcpy(params, priors, sizeof params);
    demo_train_notes notes;
    memset(&notes, 0, sizeof notes);
    /* A given name that differs, never seen between strangers: +15 bits for a match. */
    params[DEMO_F_GIVEN].u[4] = 1.25e-6;
    params[DEMO_F_GIVEN].u[0] = 0.99;
    /* The same year of birth weighing less than another year (FEBRL1 does, by 0.6 bits). */
    demo_field_params *b = &params[DEMO_F_BIRTH];
    b->m[3] = 0.001;
    b->m[4] = 0.059;
    double msum = b->m[3] + b->m[4];
    demo_train_order(params, priors, &notes);
    assert_memory_equal(params[DEMO_F_GIVEN].m, priors[DEMO_F_GIVEN].m, sizeof priors[DEMO_F_GIVEN].m);
    assert_memory_equal(params[DEMO_F_GIVEN].u, priors[DEMO_F_GIVEN].u, sizeof priors[DEMO_F_GIVEN].u);
    assert_non_null(notes.order[DEMO_F_GIVEN]);
    assert_non_null(notes.u[DEMO_F_GIVEN].kept);
    assert_non_null(notes.order[DEMO_F_BIRTH]);
    assert_true(fabs(b->m[3] / b->u[3] - b->m[4] / b->u[4]) < 1e-12);
    assert_true(fabs(b->m[3] + b->m[4] - msum) < 1e-12);
    assert_true(b->m[4] / b->u[4] < 1);
    assert_memory_equal(b->m, priors[DEMO_F_BIRTH].m, 3 * sizeof b->m[0]); /* the others as they were */
    assert_null(notes.order[DEMO_F_FAMILY]);
    demo_model_free(m);
}

/* The prior rests on all pairs of records: with too few it is kept; with
 * enough it is the matches found over them, blended with the prior. */
static void test_train_prior_needs_pairs(void **state)
{
    (void)state;
    demo_train_note note;
    /* Twelve records of one man: 66 pairs, all matches. */
    assert_true(demo_train_prior(0.999999, 66, 66, 0.01, &note) == 0.01);
    assert_non_null(note.kept);
    assert_true(demo_train_prior(0.5, 0, 1e6, 0.01, &note) == 0.01);
    assert_non_null(note.kept);
    double p = demo_train_prior(0.5, 10000, 5e7, 0.01, &note);
    assert_null(note.kept);
    assert_true(fabs(p - (5000 + DEMO_TRAIN_MIN_PAIRS * 0.01) / (5e7 + DEMO_TRAIN_MIN_PAIRS)) < 1e-15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_weights_and_guards),
        cmocka_unit_test(test_weights_follow_params),
        cmocka_unit_test(test_guards),
        cmocka_unit_test(test_guards_lifted_at_home),
        cmocka_unit_test(test_replacement_evidence),
        cmocka_unit_test(test_household_evidence),
        cmocka_unit_test(test_corroboration),
        cmocka_unit_test(test_blocking_keys),
        cmocka_unit_test(test_blocking_key_text),
        cmocka_unit_test(test_stored_features_round_trip),
        cmocka_unit_test(test_rules_validation),
        cmocka_unit_test(test_train_u_counts_distinct_pairs),
        cmocka_unit_test(test_train_keeps_levels_in_order),
        cmocka_unit_test(test_train_prior_needs_pairs),
    };
    return cmocka_run_group_tests_name("demo_model", tests, NULL, NULL);
}
