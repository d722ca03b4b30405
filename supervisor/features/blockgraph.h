/*
 * QEMU's block graph, as x-debug-query-block-graph gives it ({nodes: [{id,
 * name...}], edges: [{parent, child, name}]}): the live names behind a
 * device, for snapshot merges and the last snapshot's commit.
 */
#ifndef SV_BLOCKGRAPH_H
#define SV_BLOCKGRAPH_H

#include <jansson.h>

/* The id of the node named name, or -1. */
json_int_t sv_graph_id(json_t *graph, const char *name);
/* The name of node id, or "". */
const char *sv_graph_name(json_t *graph, json_int_t id);
/* The child of parent by the edge named edge ("file", "backing"), or -1. */
json_int_t sv_graph_child(json_t *graph, json_int_t parent, const char *edge);

#endif
