/* Unit tests of demographics/demo_nicknames, on the shared nickname table and on small files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demographics/demo_nicknames.h"
#include "tests/harness.h"

static void test_shared_table(void **state)
{
    const char *data = rl_test_data_dir("demographics/nicknames_names.csv");
    if (!data)
        skip();
    char path[1024];
    snprintf(path, sizeof path, "%s/demographics/nicknames_names.csv", data);
    demo_nicknames *t = NULL;
    rl_error *err = demo_nicknames_load(path, &t);
    if (err)
        fail_msg("%s", rl_error_message(err));
    /* 2,691 rows, both directions, duplicates (a row listed both ways) merged. */
    assert_true(demo_nicknames_size(t) > 2691 && demo_nicknames_size(t) <= 2 * 2691);
    assert_true(demo_nicknames_equivalent(t, "robert", "bob"));
    assert_true(demo_nicknames_equivalent(t, "bob", "robert"));
    assert_true(demo_nicknames_equivalent(t, "bobby", "rob"));
    /* bill is listed under robert and william; that does not make them one name. */
    assert_true(demo_nicknames_equivalent(t, "bill", "robert"));
    assert_true(demo_nicknames_equivalent(t, "bill", "william"));
    assert_true(demo_nicknames_equivalent(t, "aaron", "ron"));
    assert_true(demo_nicknames_equivalent(t, "mary", "mary"));
    assert_false(demo_nicknames_equivalent(t, "john", "mary"));
    assert_false(demo_nicknames_equivalent(t, "robert", "william"));
    assert_false(demo_nicknames_equivalent(t, "zzyzx", "robert"));
    assert_false(demo_nicknames_equivalent(t, "", ""));
    demo_nicknames_free(t);
    demo_nicknames_free(NULL);
}

static char *write_temp(const char *content)
{
    char *dir = rl_test_tmpdir("nick");
    char *path = NULL;
    assert_true(asprintf(&path, "%s/n.csv", dir) > 0);
    FILE *f = fopen(path, "w");
    fputs(content, f);
    fclose(f);
    free(dir);
    return path;
}

static void expect_load_error(const char *content, const char *fragment)
{
    char *path = write_temp(content);
    demo_nicknames *t = NULL;
    rl_error *err = demo_nicknames_load(path, &t);
    assert_non_null(err);
    assert_null(t);
    if (!strstr(rl_error_message(err), fragment))
        fail_msg("message \"%s\" lacks \"%s\"", rl_error_message(err), fragment);
    rl_error_free(err);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    rl_test_rmtree(path);
    free(path);
}

static void test_small_files(void **state)
{
    char *path = write_temp("name1,relationship,name2\nWilliam,has_nickname,Bill\nwilliam,has_nickname,Liam\nJosé,has_nickname,Pepe\n");
    demo_nicknames *t = NULL;
    assert_null(demo_nicknames_load(path, &t));
    assert_true(demo_nicknames_equivalent(t, "william", "liam"));
    assert_true(demo_nicknames_equivalent(t, "bill", "william"));
    assert_false(demo_nicknames_equivalent(t, "bill", "liam")); /* not transitive */
    assert_true(demo_nicknames_equivalent(t, "jose", "pepe")); /* normalised on load */
    assert_false(demo_nicknames_equivalent(t, "bill", "pepe"));
    demo_nicknames_free(t);
    *strrchr(path, '/') = '\0';
    rl_test_rmtree(path);
    free(path);

    expect_load_error("william,has_nickname\n", "line 1");
    expect_load_error("name1,relationship,name2\nwilliam,is_father_of,bill\n", "line 2");
    expect_load_error("a,has_nickname,b,c\n", "expected name1,relationship,name2");
    expect_load_error("---,has_nickname,bill\n", "name1 is empty");
    demo_nicknames *none = NULL;
    rl_error *err = demo_nicknames_load("/nonexistent/nick.csv", &none);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_table),
        cmocka_unit_test(test_small_files),
    };
    return cmocka_run_group_tests_name("demo_nicknames", tests, NULL, NULL);
}
