/*
 * kern_cl_sources: the OpenCL C sources (the .cl files of kernels/), embedded at build
 * time by scripts/embed-cl.sh (the Makefile regenerates them when a .cl
 * changes), so the program needs no kernel files at run time.
 */
#ifndef KERN_CL_SOURCES_H
#define KERN_CL_SOURCES_H

typedef struct kern_cl_source {
    const char *name; /* file name without .cl */
    const char *text;
} kern_cl_source;

extern const kern_cl_source kern_cl_sources[];
extern const unsigned kern_cl_source_count;

#endif
