/*
 * conform_report.h — what moak-conform tells: a table for a person, JSON for
 * scripts and JUnit XML for a vendor's CI, each with the machine (probe) and
 * the moak version that produced it.
 */
#ifndef MOAK_CONFORM_REPORT_H
#define MOAK_CONFORM_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "conform_cases.h"
#include "conform_run.h"

typedef struct conform_record {
    const conform_case *c;
    moak_format format;
    char backend[32];
    conform_result res;
} conform_record;

#define CONFORM_MAX_BACKENDS 8

typedef struct conform_report {
    conform_record *items;
    int count, capacity;
    uint64_t seed;
    bool quick;
    int32_t threads;
    double seconds;
    const char *cases_path;
    /* Every backend moak knows and whether this run tested it. */
    struct {
        char name[32];
        bool tested;
        char note[160];          /* why not tested */
    } backends[CONFORM_MAX_BACKENDS];
    int n_backends;
} conform_report;

bool conform_report_add(conform_report *r, const conform_case *c, moak_format f, const char *backend,
                        const conform_result *res);
void conform_report_free(conform_report *r);

/* Counts of each outcome (indexed by conform_outcome). */
void conform_report_counts(const conform_report *r, int counts[4]);

/* The table, one row at a time as results arrive. */
void conform_print_header(FILE *out);
void conform_print_row(FILE *out, const conform_record *rec);
/* Backends skipped, failures repeated, and the closing line. */
void conform_print_summary(FILE *out, const conform_report *r);

/* false (and a message on stderr) when the file cannot be written. */
bool conform_write_json(const char *path, const conform_report *r, const moak_hw_info *hw);
bool conform_write_junit(const char *path, const conform_report *r, const moak_hw_info *hw);

#endif
