/*
 * fuzz.h — shared by the fuzz harnesses of tests/fuzz/ (see README.md there).
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput().  It is linked either
 * with libFuzzer (make fuzz: clang, ASan + UBSan, build-fuzz/bin/fuzz_<name>)
 * or with replay_main.c (make test: $(BUILD)/fuzz-replay/fuzz_<name>, which
 * runs every seed and regression input once).
 *
 * FUZZ_CHECK is the harnesses' oracle: a property that must hold for every
 * input.  It aborts, which both libFuzzer and the replay driver report as a
 * crash (assert() would vanish under NDEBUG).
 */
#ifndef TRAIND_FUZZ_H
#define TRAIND_FUZZ_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

/* FUZZ_VERBOSE=1 in the environment: harnesses say what each input did
 * (to stderr), for checking that seeds reach what they are meant to. */
static inline bool fuzz_verbose(void)
{
    static int v = -1;
    if (v < 0)
        v = getenv("FUZZ_VERBOSE") && *getenv("FUZZ_VERBOSE") == '1';
    return v;
}

static char fuzz_scratch_path_[256];

static void fuzz_scratch_remove_(void)
{
    unlink(fuzz_scratch_path_);
}

/* Writes data to a per-process scratch file (on /dev/shm when there is one,
 * so nothing touches a disk) and returns its path.  The path is the same for
 * every call of a process: each call replaces the previous contents.  The
 * file is removed at exit. */
static inline const char *fuzz_scratch_file(const char *tag, const uint8_t *data, size_t size)
{
    if (!fuzz_scratch_path_[0]) {
        struct stat st;
        const char *dir = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                              ? "/dev/shm"
                              : "/tmp";
        snprintf(fuzz_scratch_path_, sizeof fuzz_scratch_path_, "%s/traind-fuzz-%s-%ld", dir, tag,
                 (long)getpid());
        atexit(fuzz_scratch_remove_);
    }
    int fd = open(fuzz_scratch_path_, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        FUZZ_CHECK(n > 0);
        off += (size_t)n;
    }
    close(fd);
    return fuzz_scratch_path_;
}

#endif
