/* rl_version: the program's version and source revision, fixed at build time. */
#ifndef RL_VERSION_H
#define RL_VERSION_H

const char *rl_version(void);
const char *rl_git_rev(void);

#endif
