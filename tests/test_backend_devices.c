/* moak_backend_devices: every bad input gets its status, a message naming the
 * argument, and leaves the buffer untouched; a valid call writes a
 * NUL-terminated text (empty for backends without devices). */
#include <stdio.h>
#include <string.h>

#include "moak.h"

static int failures;

static void check(int ok, const char *what)
{
    printf("%s: %s\n", what, ok ? "ok" : "FAIL");
    failures += !ok;
}

int main(void)
{
    char buf[64], poison[64];
    memset(poison, 0x5a, sizeof poison);

    memcpy(buf, poison, sizeof buf);
    moak_status st = moak_backend_devices(0, buf, 0);
    check(st == MOAK_ERR_INVALID_ARGUMENT && strstr(moak_last_error(NULL), "len") &&
              memcmp(buf, poison, sizeof buf) == 0,
          "len 0 -> MOAK_ERR_INVALID_ARGUMENT naming len, buf untouched");

    st = moak_backend_devices(0, NULL, 16);
    check(st == MOAK_ERR_NULL_ARGUMENT && strstr(moak_last_error(NULL), "buf") != NULL,
          "buf NULL -> MOAK_ERR_NULL_ARGUMENT naming buf");

    const int32_t bad[] = {-1, moak_backend_count()};
    for (int i = 0; i < 2; i++) {
        memcpy(buf, poison, sizeof buf);
        st = moak_backend_devices(bad[i], buf, sizeof buf);
        check(st == MOAK_ERR_OUT_OF_RANGE && strstr(moak_last_error(NULL), "index") &&
                  memcmp(buf, poison, sizeof buf) == 0,
              "index out of range -> MOAK_ERR_OUT_OF_RANGE naming index, buf untouched");
    }

    for (int32_t i = 0; i < moak_backend_count(); i++) {
        moak_backend_info info = MOAK_BACKEND_INFO_INIT;
        if (moak_backend_query(i, &info) != MOAK_OK)
            continue;
        memcpy(buf, poison, sizeof buf);
        st = moak_backend_devices(i, buf, sizeof buf);
        char what[96];
        snprintf(what, sizeof what, "%s: a valid call writes a NUL-terminated text", info.name);
        check(st == MOAK_OK && memchr(buf, '\0', sizeof buf) != NULL, what);
    }
    printf("# test_backend_devices: %d failures\n", failures);
    return failures ? 1 : 0;
}
