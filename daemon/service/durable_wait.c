/* durable_wait — see traind/durable_wait.h. */
#include "traind/durable_wait.h"

#include <stdlib.h>

#include "traind/util.h"

void durable_wait_add(durable_wait **list, unsigned long need, durable_wait_cb cb, void *arg)
{
    durable_wait *w = xcalloc(1, sizeof *w);
    w->need = need;
    w->cb = cb;
    w->arg = arg;
    w->next = *list;
    *list = w;
}

void durable_wait_wake(durable_wait **list, unsigned long seq, int rc)
{
    while (*list) {
        durable_wait *w = *list;
        if (w->need <= seq) {
            *list = w->next;
            w->cb(w->arg, rc);
            free(w);
        } else {
            list = &w->next;
        }
    }
}

void durable_wait_drop_all(durable_wait **list, int rc)
{
    while (*list) {
        durable_wait *w = *list;
        *list = w->next;
        w->cb(w->arg, rc);
        free(w);
    }
}
