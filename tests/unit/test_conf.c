// SPDX-License-Identifier: MIT
/* chainfsd configuration parsing: values, defaults, and line-numbered errors. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chainfs/errno.h"
#include "daemon/conf.h"

static char g_path[64];

static int
load(const char *text, struct cfsd_config *cfg, struct cfsd_config_errors *errs)
{
	FILE *f;
	int fd;

	strcpy(g_path, "/tmp/cfs-conf-XXXXXX");
	fd = mkstemp(g_path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return cfsd_config_load(g_path, cfg, errs);
}

static bool
has_error(const struct cfsd_config_errors *errs, const char *needle)
{
	for (unsigned i = 0; i < errs->count; i++) {
		if (strstr(errs->msg[i], needle))
			return true;
	}
	return false;
}

static void
cleanup(struct cfsd_config *cfg)
{
	cfsd_config_fini(cfg);
	unlink(g_path);
}

START_TEST(test_conf_values_parsed_when_valid)
{
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;
	int rc = load("[node]\nid = 7\nlisten = 127.0.0.1:7700\nloops = 3\npin = no\n"
		      "log_level = debug\n[net]\nmax_payload = 16M\nmax_outq = 512K\n",
		      &cfg, &errs);

	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(errs.count, 0);
	ck_assert_uint_eq(cfg.node_id, 7);
	ck_assert_str_eq(cfg.listen, "127.0.0.1:7700");
	ck_assert_uint_eq(cfg.loops, 3);
	ck_assert(!cfg.pin);
	ck_assert_uint_eq(cfg.max_payload, 16ull << 20);
	ck_assert_uint_eq(cfg.max_outq, 512ull << 10);
	ck_assert_uint_eq(cfg.request_timeout_ms, 5000);	/* default */
	ck_assert_uint_eq(cfg.max_frame_header, 1u << 20);	/* default */
	cleanup(&cfg);
}
END_TEST

START_TEST(test_conf_every_error_has_its_line_when_many_are_wrong)
{
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;
	int rc = load("[node]\nid = 0\nlisten = nohostport\nloops = 99\nbogus = 1\n"
		      "[net]\nmax_payload = 12Q\n[nosuch]\nx = 1\n",
		      &cfg, &errs);

	ck_assert_int_eq(rc, -CFS_ECONFIG);
	ck_assert(has_error(&errs, ":2: [node] id: out of range"));
	ck_assert(has_error(&errs, ":3: [node] listen: expected host:port"));
	ck_assert(has_error(&errs, ":4: [node] loops: expected 'auto' or 1..64"));
	ck_assert(has_error(&errs, ":5: [node] unknown key 'bogus'"));
	ck_assert(has_error(&errs, ":7: [net] max_payload: '12Q' is not a size"));
	ck_assert(has_error(&errs, ":9: unknown section [nosuch]"));
	cleanup(&cfg);
}
END_TEST

START_TEST(test_conf_required_keys_reported_when_missing)
{
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;
	int rc = load("[node]\nloops = auto\n", &cfg, &errs);

	ck_assert_int_eq(rc, -CFS_ECONFIG);
	ck_assert(has_error(&errs, "[node] id: required key missing"));
	ck_assert(has_error(&errs, "[node] listen: required key missing"));
	cleanup(&cfg);
}
END_TEST

START_TEST(test_conf_duplicate_key_named_when_set_twice)
{
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;
	int rc = load("[node]\nid = 1\nlisten = h:1\nid = 2\n", &cfg, &errs);

	ck_assert_int_eq(rc, -CFS_ECONFIG);
	ck_assert(has_error(&errs, ":4: [node] id: set twice (first on line 2)"));
	cleanup(&cfg);
}
END_TEST

/* inih reports keys, not section headers: a section given twice would merge
 * without a word ([target.01] being [target.1]). */
START_TEST(test_conf_repeated_section_named_when_given_twice)
{
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;
	int rc = load("[node]\nid = 1\nlisten = h:1\n[net]\nmax_outq = 1M\n"
		      "  [node]\nloops = 2\n"
		      "[target.1]\npath = /d/1\ncapacity = 1G\n"
		      "[target.01] ; the same target\nloop = 0\n",
		      &cfg, &errs);

	ck_assert_int_eq(rc, -CFS_ECONFIG);
	ck_assert(has_error(&errs, ":6: [node]: the section of line 1 again"));
	ck_assert(has_error(&errs, ":11: [target.01]: the section of line 8 again"));
	ck_assert_uint_eq(errs.count, 2);
	cleanup(&cfg);

	rc = load("[node]\nid = 1\nlisten = h:1\n[target.1]\npath = /d/1\ncapacity = 1G\n"
		  "[target.2]\npath = /d/2\ncapacity = 1G\n[net]",
		  &cfg, &errs);
	ck_assert_int_eq(rc, 0);
	cleanup(&cfg);
}
END_TEST

START_TEST(test_conf_targets_sorted_and_checked_when_present)
{
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;
	int rc = load("[node]\nid = 1\nlisten = h:1\nloops = 2\n"
		      "[target.9]\npath = /d/9\ncapacity = 1G\nloop = 1\n"
		      "[target.3]\npath = /d/3\ncapacity = 64M\n",
		      &cfg, &errs);

	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(cfg.ntargets, 2);
	ck_assert_uint_eq(cfg.targets[0].id, 3);
	ck_assert_int_eq(cfg.targets[0].loop, -1);
	ck_assert_uint_eq(cfg.targets[0].capacity, 64ull << 20);
	ck_assert_uint_eq(cfg.targets[1].id, 9);
	ck_assert_str_eq(cfg.targets[1].path, "/d/9");
	ck_assert_int_eq(cfg.targets[1].loop, 1);
	cleanup(&cfg);

	rc = load("[node]\nid = 1\nlisten = h:1\nloops = 2\n[target.0]\npath=/x\n"
		  "[target.4]\npath = /d\nloop = 5\n[target.5]\npath = /d\ncapacity = 1G\n",
		  &cfg, &errs);
	ck_assert_int_eq(rc, -CFS_ECONFIG);
	ck_assert(has_error(&errs, ":6: [target.0]: target id must be"));
	ck_assert(has_error(&errs, ":8: [target.4] capacity: required key missing"));
	ck_assert(has_error(&errs, "[target.4] loop: 5 but [node] loops is 2"));
	ck_assert(has_error(&errs, "[target.5] path: same directory as [target.4]"));
	cleanup(&cfg);
}
END_TEST

START_TEST(test_conf_sizes_and_endpoints_parse_when_well_formed)
{
	uint64_t v;
	char host[64];
	uint16_t port;

	ck_assert_int_eq(cfsd_parse_size("4096", &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(cfsd_parse_size("2G", &v), 0);
	ck_assert_uint_eq(v, 2ull << 30);
	ck_assert_int_eq(cfsd_parse_size("3MiB", &v), 0);
	ck_assert_uint_eq(v, 3ull << 20);
	ck_assert_int_eq(cfsd_parse_size("-1", &v), -EINVAL);
	ck_assert_int_eq(cfsd_parse_size("1X", &v), -EINVAL);
	ck_assert_int_eq(cfsd_parse_size("99999999999T", &v), -ERANGE);
	ck_assert_int_eq(cfsd_parse_endpoint("[::1]:80", host, sizeof(host), &port), 0);
	ck_assert_str_eq(host, "::1");
	ck_assert_uint_eq(port, 80);
	ck_assert_int_eq(cfsd_parse_endpoint("a:70000", host, sizeof(host), &port), -EINVAL);
	ck_assert_int_eq(cfsd_parse_endpoint(":1", host, sizeof(host), &port), -EINVAL);
}
END_TEST

START_TEST(test_conf_unreadable_file_reported_when_missing)
{
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;

	ck_assert_int_eq(cfsd_config_load("/nonexistent/x.conf", &cfg, &errs), -ENOENT);
	ck_assert(has_error(&errs, "cannot open"));
	cfsd_config_fini(&cfg);
}
END_TEST

/* inih reads lines of at most 199 characters and would hand back the rest
 * of a longer one as a line of its own: a commented-out setting's tail would
 * take effect. Such a line is refused, with its number. */
START_TEST(test_conf_long_line_refused_when_over_inih_buffer)
{
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;
	char text[1024];
	char pad[300];

	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	snprintf(text, sizeof(text),
		 "[node]\nid = 3\nlisten = 127.0.0.1:7700\n[net]\n# %s max_payload = 8K\n", pad);
	ck_assert_int_eq(load(text, &cfg, &errs), -CFS_ECONFIG);
	ck_assert(has_error(&errs, ":5: line longer than"));
	ck_assert_uint_eq(errs.count, 1);
	cleanup(&cfg);
}
END_TEST

/* A path longer than an error message: every message stays inside its
 * slot (the reason used to be written past it), and there are as many as
 * fit. */
START_TEST(test_conf_errors_stay_in_bounds_when_path_is_long)
{
	struct {
		struct cfsd_config_errors errs;
		unsigned char canary[64];
	} e;
	struct cfsd_config cfg;
	char top[64], dir[600], path[700], name[251];
	FILE *f;

	memset(e.canary, 0xa5, sizeof(e.canary));
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(top, sizeof(top), "/tmp/cfs-conf-long-%d", (int)getpid());
	snprintf(dir, sizeof(dir), "%s/%s", top, name);
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	ck_assert_int_eq(mkdir(top, 0700), 0);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("[node]\n", f);
	for (int i = 0; i < 40; i++)
		fprintf(f, "bogus%d = 1\n", i);
	fclose(f);
	ck_assert_int_eq(cfsd_config_load(path, &cfg, &e.errs), -CFS_ECONFIG);
	ck_assert_uint_eq(e.errs.count, CFSD_CONFIG_MAX_ERRORS);
	/* 40 unknown keys and the two required keys missing: the rest counted. */
	ck_assert_uint_eq(e.errs.dropped, 42 - CFSD_CONFIG_MAX_ERRORS);
	for (unsigned i = 0; i < e.errs.count; i++)
		ck_assert_uint_lt(strnlen(e.errs.msg[i], sizeof(e.errs.msg[i])),
				  sizeof(e.errs.msg[i]));
	for (size_t i = 0; i < sizeof(e.canary); i++)
		ck_assert_uint_eq(e.canary[i], 0xa5);
	cfsd_config_fini(&cfg);
	unlink(path);
	rmdir(dir);
	rmdir(top);
}
END_TEST

/* Sections without keys never reach inih's key handler: a target whose keys
 * are all commented out silently did not exist, and an unknown or misnamed
 * empty section passed --check-config. */
START_TEST(test_conf_empty_sections_checked_when_they_have_no_keys)
{
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;
	int rc = load("[node]\nid = 1\nlisten = h:1\n"
		      "[target.1]\n; path = /d/1\n; capacity = 1G\n"
		      "[nosuch]\n"
		      "[target.x]\n"
		      "[net]\n",
		      &cfg, &errs);

	ck_assert_int_eq(rc, -CFS_ECONFIG);
	ck_assert(has_error(&errs, ":4: [target.1]: no keys (path and capacity are required)"));
	ck_assert(has_error(&errs, ":7: unknown section [nosuch]"));
	ck_assert(has_error(&errs, ":8: [target.x]: target id must be"));
	ck_assert_uint_eq(errs.count, 3); /* an empty known section is fine */
	cleanup(&cfg);
}
END_TEST

/* What --check-config passed and the daemon then refused at start, with no
 * line or key named; and numbers strtoull alone would take. */
START_TEST(test_conf_values_refused_when_only_startup_would_have)
{
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;

	ck_assert_int_eq(
		load("[node]\nid = 1\nlisten = h:1\n[net]\nmax_payload = 128M\n", &cfg, &errs),
		-CFS_ECONFIG);
	ck_assert(has_error(&errs, ":5: [net] max_payload"));
	cleanup(&cfg);
	ck_assert_int_eq(load("[node]\nid = 1\nlisten = h:1\n[mgmtd]\nheartbeat_ms = 5000\n"
			      "lease_ms = 1000\n",
			      &cfg, &errs),
			 -CFS_ECONFIG);
	ck_assert(has_error(&errs, "[mgmtd] lease_ms must be larger than heartbeat_ms"));
	cleanup(&cfg);
	ck_assert_int_eq(load("[node]\nid = 0x0x10\nlisten = h:1\n", &cfg, &errs), -CFS_ECONFIG);
	ck_assert(has_error(&errs, ":2: [node] id"));
	cleanup(&cfg);
	ck_assert_int_eq(load("[node]\nid = 0x10\nlisten = h:1\n", &cfg, &errs), 0);
	ck_assert_uint_eq(cfg.node_id, 16);
	cleanup(&cfg);
}
END_TEST

/* inih skips a UTF-8 byte order mark; the check for a repeated section did
 * not, and so missed a repeat of the first one. */
START_TEST(test_conf_repeated_first_section_named_when_file_starts_with_bom)
{
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;
	int rc = load("\xEF\xBB\xBF[node]\nid = 1\n[net]\n[node]\nlisten = h:1\n", &cfg, &errs);

	ck_assert_int_eq(rc, -CFS_ECONFIG);
	ck_assert(has_error(&errs, ":4: [node]: the section of line 1 again"));
	cleanup(&cfg);
}
END_TEST

static Suite *
conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_conf_values_parsed_when_valid);
	tcase_add_test(tc, test_conf_every_error_has_its_line_when_many_are_wrong);
	tcase_add_test(tc, test_conf_required_keys_reported_when_missing);
	tcase_add_test(tc, test_conf_duplicate_key_named_when_set_twice);
	tcase_add_test(tc, test_conf_repeated_section_named_when_given_twice);
	tcase_add_test(tc, test_conf_targets_sorted_and_checked_when_present);
	tcase_add_test(tc, test_conf_sizes_and_endpoints_parse_when_well_formed);
	tcase_add_test(tc, test_conf_unreadable_file_reported_when_missing);
	tcase_add_test(tc, test_conf_long_line_refused_when_over_inih_buffer);
	tcase_add_test(tc, test_conf_errors_stay_in_bounds_when_path_is_long);
	tcase_add_test(tc, test_conf_empty_sections_checked_when_they_have_no_keys);
	tcase_add_test(tc, test_conf_values_refused_when_only_startup_would_have);
	tcase_add_test(tc, test_conf_repeated_first_section_named_when_file_starts_with_bom);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(conf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
