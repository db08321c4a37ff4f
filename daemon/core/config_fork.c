/*
 * config_fork — a fork's config from its parent's.  See traind/fork.h.
 *
 * The parent's config.yaml is parsed into a tree, each `--set key=value`
 * replaces one key (the value parsed as YAML, so lists and quoted strings
 * work as in a file), the name is set, and the tree goes through the run
 * config's own validator.  Keys a fork may not change are refused before
 * that, by name; the lineage hash of parent and child is compared after, as
 * a guard that the rule and the hash agree.
 */
#include "traind/fork.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "traind/sweep.h"
#include "traind/util.h"
#include "traind/yamltree.h"

#define SET_PATH_MAX 128

/* Splits "key=value"; 0, or -1 reported. */
static int split_set(const char *set, char key[SET_PATH_MAX], const char **value, diag_list_t *errs)
{
    const char *eq = strchr(set, '=');
    if (!eq || eq == set || (size_t)(eq - set) >= SET_PATH_MAX) {
        diag_add(errs, "--set", 0, 0, "'%s' is not KEY=VALUE (for example optimizer.lr=3.0e-4)", set);
        return -1;
    }
    memcpy(key, set, (size_t)(eq - set));
    key[eq - set] = '\0';
    *value = eq + 1;
    return 0;
}

/* A fork continues its parent's optimizer state, and m, v and step mean
 * what the parent's optimizer type made them mean (AdamW's moments, SGD's or
 * Muon's momentum), so no fork changes the type — whichever types a build
 * has.  A --set of the parent's own type is no change and is let through. */
static void refuse_type_change(diag_list_t *errs, const char *where, optim_type parent, const char *child)
{
    diag_add(errs, where, 0, 0, "a fork keeps its parent's optimizer: the checkpoint holds the state of "
             "optimizer.type %s, which %s cannot continue; start a new run to change the optimizer type",
             optim_type_name(parent), child);
}

static int apply_set(ynode *tree, const char *set, optim_type parent_type, diag_list_t *errs)
{
    char key[SET_PATH_MAX];
    const char *text;
    if (split_set(set, key, &text, errs) != 0)
        return -1;
    char where[SET_PATH_MAX + 8];
    snprintf(where, sizeof where, "--set %s", key);
    char hint[128];
    if (!cfg_key_path_known(key, hint, sizeof hint)) {
        if (hint[0])
            diag_add(errs, where, 0, 0, "unknown config key '%s' (did you mean '%s'?)", key, hint);
        else
            diag_add(errs, where, 0, 0, "unknown config key '%s'", key);
        return -1;
    }
    if (!strcmp(key, "optimizer.type")) {
        char value[64];
        cv_quote(text, strlen(text), value, sizeof value);
        if (strcmp(text, optim_type_name(parent_type)) == 0)
            return 0;
        refuse_type_change(errs, where, parent_type, value);
        return -1;
    }
    if (!sweep_fork_may_change(key)) {
        diag_add(errs, where, 0, 0, "a fork changes only the schedule, optimizer lr/weight_decay/betas/"
                 "grad_clip and the train cadences; %s would change what the checkpoint holds", key);
        return -1;
    }
    diag_list_t verrs = DIAG_LIST_INIT;
    ynode *v = ytree_parse(text, strlen(text), &verrs);
    if (!v || v->kind == YNODE_MAP) {
        diag_add(errs, where, 0, 0, "'%s' is not a value (a number, a word or a [list])", text);
        diag_free(&verrs);
        ytree_free(v);
        return -1;
    }
    diag_free(&verrs);
    /* the value has no place in the parent's file: no position */
    v->line = v->column = 0;
    for (size_t i = 0; i < v->n; i++)
        v->items[i]->line = v->items[i]->column = 0;
    if (ytree_set_path(tree, key, v) != 0) {
        diag_add(errs, where, 0, 0, "the parent's config has no mapping to set %s in", key);
        return -1;
    }
    if (!strcmp(key, "schedule.type"))
        cfg_prune_keys_for_type(tree, "schedule");
    return 0;
}

int cfg_fork(const char *parent_yaml, size_t len, const char *parent_name, const cfg_fork_req *req,
             const cfg_parse_opts *opts, run_config *out, char **child_yaml, diag_list_t *errs)
{
    memset(out, 0, sizeof *out);
    *child_yaml = NULL;
    size_t before = errs->n;
    run_config parent;
    if (cfg_parse(parent_yaml, len, opts, &parent, errs) != 0)
        return -1;                      /* the parent's own file no longer validates */
    ynode *tree = ytree_parse(parent_yaml, len, errs);
    if (!tree) {
        cfg_free(&parent);
        return -1;
    }
    for (size_t i = 0; i < req->n_sets; i++)
        apply_set(tree, req->sets[i], parent.optim.type, errs);
    char name[256];
    if (req->name)
        snprintf(name, sizeof name, "%s", req->name);
    else
        snprintf(name, sizeof name, "%s-fork-%ld", parent_name ? parent_name : parent.name, req->at_step);
    ymap_put(tree, "name", yscalar_new(name, false, 0, 0));
    diag_list_t verrs = DIAG_LIST_INIT;
    if (errs->n == before && cfg_validate_tree(tree, opts, out, &verrs) != 0) {
        /* a bad value given with --set is named as given */
        for (size_t e = 0; e < verrs.n; e++) {
            const diag_t *d = &verrs.items[e];
            char path[SET_PATH_MAX + 8];
            snprintf(path, sizeof path, "%s", d->path);
            for (size_t i = 0; i < req->n_sets; i++) {
                size_t kl = strcspn(req->sets[i], "=");
                if (!strncmp(d->path, req->sets[i], kl) && (d->path[kl] == '\0' || d->path[kl] == '['))
                    snprintf(path, sizeof path, "--set %.*s", (int)kl, req->sets[i]);
            }
            diag_add(errs, path, d->line, d->column, "%s", d->message);
        }
    } else if (errs->n == before) {
        if (req->at_step > parent.sched.total_steps)
            diag_add(errs, "--at", 0, 0, "step %ld is past the parent's total_steps %ld", req->at_step,
                     parent.sched.total_steps);
        else if (out->sched.total_steps < req->at_step)
            diag_add(errs, "schedule.total_steps", 0, 0, "the fork starts at step %ld, past its total_steps %ld",
                     req->at_step, out->sched.total_steps);
        else if (out->optim.type != parent.optim.type)
            refuse_type_change(errs, "optimizer.type", parent.optim.type, optim_type_name(out->optim.type));
        else if (cfg_lineage_hash(out) != cfg_lineage_hash(&parent))
            diag_add(errs, "", 0, 0, "the fork would change what the parent's checkpoint holds");
        if (errs->n == before)
            *child_yaml = ytree_emit(tree);
        if (!*child_yaml) {
            if (errs->n == before)
                diag_add(errs, "", 0, 0, "cannot write the fork's config");
            cfg_free(out);
        }
    }
    diag_free(&verrs);
    ytree_free(tree);
    cfg_free(&parent);
    return errs->n == before ? 0 : -1;
}
