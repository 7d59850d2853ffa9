/* TEMPORARY: replaced by the engine commands being written now. */
#include <stdio.h>
#define STUB(n) int iac_cmd_##n(int argc, char **argv) { fprintf(stderr, "error: '%s' not built yet\n", argv[0]); return 1; } void iac_help_##n(void) {}
STUB(validate) STUB(plan) STUB(apply) STUB(destroy) STUB(graph) STUB(output) STUB(state) STUB(show)
