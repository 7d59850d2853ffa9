/* fuzz_state: .iac/state.json as iac_state_open reads it (load_snapshot in
 * iac/state/state.c), then what commands do with an opened state and the
 * round trip of state_check.c (journal write, snapshot, reopen). */
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "state_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *dir, *snap, *journal, *backup;
	if (!dir) {
		dir = fuzz_path(fuzz_tmpdir("state"), "cfg");
		char *iac = fuzz_path(dir, ".iac");
		mkdir(dir, 0700);
		mkdir(iac, 0700);
		snap = fuzz_path(iac, "state.json");
		journal = fuzz_path(iac, "state.journal");
		backup = fuzz_path(iac, "state.json.backup");
		free(iac);
	}
	unlink(journal);
	unlink(backup);
	fuzz_write(snap, data, size);
	fuzz_state_check(dir);
	return 0;
}
