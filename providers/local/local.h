/* local: the embedded default provider. Everything it does happens on the
 * machine iac runs on: local.file (a file with content and mode) and
 * local.exec (commands to create, destroy and check something). */
#ifndef IAC_PROVIDERS_LOCAL_H
#define IAC_PROVIDERS_LOCAL_H

#include "iac/provider/provider.h"

extern const iac_rtype iac_local_file;
extern const iac_rtype iac_local_exec;
extern const iac_provider iac_provider_local;

/* Normalise a file mode given as "644", "0644" or 420 into "0644".
 * Returns 0, or -1 with a message naming the attribute. */
int iac_local_mode_norm(char out[8], const json_t *mode);

#endif
