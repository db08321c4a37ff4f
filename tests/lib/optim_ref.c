/*
 * optim_ref — the optimizer reference data's files.  See optim_ref.h.
 */
#include "optim_ref.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "traind/util.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int optim_ref_find(const char *dir, bool (*want)(const char *file), char **names, int max)
{
    int n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0 && want(e->d_name))
            names[n++] = xstrndup(e->d_name, len - 5);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    return n;
}

cJSON *optim_ref_load(const char *path)
{
    char *buf;
    size_t len;
    if (read_file(path, 16u << 20, &buf, &len) != 0)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    return j;
}

int optim_ref_floats(const cJSON *a, float *out, int n)
{
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (i < n && cJSON_IsString(x)) {
            uint32_t u = (uint32_t)strtoul(x->valuestring, NULL, 16);
            memcpy(&out[i], &u, sizeof u);
        }
        i++;
    }
    return i;
}
