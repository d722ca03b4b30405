/* QEMU's block graph, as x-debug-query-block-graph gives it (blockgraph.h). */
#include <string.h>

#include "blockgraph.h"
#include "util.h"

/* The id of the graph node named name in g (x-debug-query-block-graph), or
 * -1. */
json_int_t sv_graph_id(json_t *graph, const char *name)
{
	json_t *n;
	size_t i;
	json_array_foreach(json_object_get(graph, "nodes"), i, n)
		if (!strcmp(sv_jstr(n, "name", ""), name))
			return json_integer_value(json_object_get(n, "id"));
	return -1;
}

const char *sv_graph_name(json_t *graph, json_int_t id)
{
	json_t *n;
	size_t i;
	json_array_foreach(json_object_get(graph, "nodes"), i, n)
		if (json_integer_value(json_object_get(n, "id")) == id)
			return sv_jstr(n, "name", "");
	return "";
}

/* The child of parent by the edge named edge, or -1. */
json_int_t sv_graph_child(json_t *graph, json_int_t parent, const char *edge)
{
	json_t *e;
	size_t i;
	json_array_foreach(json_object_get(graph, "edges"), i, e)
		if (json_integer_value(json_object_get(e, "parent")) == parent &&
		    !strcmp(sv_jstr(e, "name", ""), edge))
			return json_integer_value(json_object_get(e, "child"));
	return -1;
}

