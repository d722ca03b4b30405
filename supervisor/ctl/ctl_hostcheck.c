/*
 * qsupctl host-check: the host layer's table (hostcheck.h), printed as
 * CHECK / RESULT / DETAIL with a "fix:" line under each non-PASS, or with
 * --json as an array of {name, result, detail, fix}. No qsupd is needed.
 * Exit 1 when any check FAILs, 0 otherwise (WARNs included).
 */
#include <stdio.h>
#include <stdlib.h>

#include "ctl.h"
#include "hostcheck.h"

int ctl_host_check(struct ctl *c, char **args, int nargs)
{
	struct sv_hc_opts o = { .profile_dir = c->profile_dir, .run_dir = c->run_dir };
	struct sv_hc_item *it = NULL;
	int n = sv_hostcheck_run(&o, &it), failed = 0;
	json_t *arr = json_array();

	(void)args, (void)nargs;
	if (n < 0 || !arr) {
		fprintf(stderr, "qsupctl: host-check: out of memory\n");
		free(it);
		json_decref(arr);
		return CTL_EXIT_ERROR;
	}
	if (!c->json)
		printf("%-18s %-6s  %s\n", "CHECK", "RESULT", "DETAIL");
	for (int i = 0; i < n; i++) {
		failed |= it[i].result == SV_HC_FAIL;
		if (c->json) {
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s?}",
			                      "name", it[i].name,
			                      "result", sv_hc_result_name(it[i].result),
			                      "detail", it[i].detail,
			                      "fix", it[i].fix[0] ? it[i].fix : NULL));
			continue;
		}
		printf("%-18s %-6s  %s\n", it[i].name, sv_hc_result_name(it[i].result),
		       it[i].detail);
		if (it[i].fix[0])
			printf("%-18s %-6s  fix: %s\n", "", "", it[i].fix);
	}
	if (c->json)
		ctl_print_json(arr, 0);
	json_decref(arr);
	free(it);
	return failed ? CTL_EXIT_ERROR : CTL_EXIT_OK;
}
