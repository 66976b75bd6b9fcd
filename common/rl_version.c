#include "common/rl_version.h"

#ifndef RL_VERSION
#define RL_VERSION "0.0.0-dev"
#endif
#ifndef RL_GIT_REV
#define RL_GIT_REV "unknown"
#endif

const char *rl_version(void) { return RL_VERSION; }
const char *rl_git_rev(void) { return RL_GIT_REV; }
