/* train_point — one training point.  See traind/train_point.h. */
#include "traind/train_point.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>

void train_point_clear(train_point *p)
{
    p->step = -1;
    p->lr = p->loss = p->loss_avg = p->grad_norm = p->eval_loss = p->time = p->steps_per_s = NAN;
}

static void add_num_or_null(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

cJSON *train_point_json(const train_point *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)p->step);
    add_num_or_null(o, "lr", p->lr);
    add_num_or_null(o, "loss", p->loss);
    add_num_or_null(o, "loss_avg", p->loss_avg);
    add_num_or_null(o, "grad_norm", p->grad_norm);
    add_num_or_null(o, "time", p->time);
    if (isfinite(p->eval_loss))
        cJSON_AddNumberToObject(o, "eval_loss", p->eval_loss);
    return o;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int train_point_from_json(const cJSON *o, train_point *p)
{
    double step = num(o, "step");
    if (!(step >= 0))
        return -EINVAL;
    train_point_clear(p);
    p->step = (long)step;
    p->lr = num(o, "lr");
    p->loss = num(o, "loss");
    p->loss_avg = num(o, "loss_avg");
    p->grad_norm = num(o, "grad_norm");
    p->time = num(o, "time");
    p->eval_loss = num(o, "eval_loss");
    return 0;
}
