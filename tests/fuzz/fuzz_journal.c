/* fuzz_journal: .iac/state.journal replayed over a valid small state.json
 * (replay_journal in iac/state/state.c), then the round trip of
 * state_check.c. The snapshot below has journal_seq 2: records with seq 3 or
 * more and its lineage are applied, older or foreign ones skipped. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "state_check.h"

#define LINEAGE "8d0c7c56-2f4e-4d8b-9a51-3c1de0a1f022"

static const char snapshot[] =
	"{\"format_version\":1,\"lineage\":\"" LINEAGE "\",\"serial\":3,\"iac_version\":\"0.1.0\","
	"\"journal_seq\":2,\"resources\":[{\"address\":\"local.file.a\",\"type\":\"local.file\",\"name\":\"a\","
	"\"module\":\"\",\"attributes\":{\"content\":\"1\",\"path\":\"x\",\"mode\":\"0644\",\"sha256\":"
	"\"6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b\"},\"sensitive_attributes\":[],"
	"\"dependencies\":[],\"updated_at\":\"2026-12-02T08:04:26Z\"}],\"outputs\":{\"a_path\":{\"value\":\"x\","
	"\"sensitive\":false,\"type\":\"string\"}},\"extra\":{\"providers\":{}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *dir, *snap, *journal, *backup;
	if (!dir) {
		dir = fuzz_path(fuzz_tmpdir("journal"), "cfg");
		char *iac = fuzz_path(dir, ".iac");
		mkdir(dir, 0700);
		mkdir(iac, 0700);
		snap = fuzz_path(iac, "state.json");
		journal = fuzz_path(iac, "state.journal");
		backup = fuzz_path(iac, "state.json.backup");
		free(iac);
	}
	unlink(backup);
	fuzz_write(snap, snapshot, strlen(snapshot));
	fuzz_write(journal, data, size);
	fuzz_state_check(dir);
	return 0;
}
