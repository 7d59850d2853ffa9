/* local: the embedded default provider. Everything it does happens on the
 * machine iac runs on: local.file (a file with content and mode) and
 * local.exec (commands to create, destroy and check something). */
#ifndef IAC_PROVIDERS_LOCAL_H
#define IAC_PROVIDERS_LOCAL_H

#include "iac/provider/provider.h"

extern const iac_rtype iac_local_file;
extern const iac_rtype iac_local_exec;
extern const iac_provider iac_provider_local;

#endif
