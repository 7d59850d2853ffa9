/* state_check: what the state and journal harnesses do with a state that
 * opened. Beyond "no crash, no leak", it checks the promise of state.h: a
 * write that returned is what the next open sees, and a snapshot holds the
 * same state as the journal it replaces. A broken promise aborts with both
 * documents on stderr (libFuzzer saves the input as a crash). */
#ifndef IAC_FUZZ_STATE_CHECK_H
#define IAC_FUZZ_STATE_CHECK_H

/* dir holds .iac/ with the input already written. */
void fuzz_state_check(const char *dir);

#endif
