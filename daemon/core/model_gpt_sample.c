/*
 * model_gpt_sample — text from a trained GPT (see traind/gpt.h): the logits
 * after a sequence, and sampling with a sliding window of the context, for
 * `trainctl sample`.  Runs the model's forward pass (model_gpt.c) on its own
 * activation buffers, as a batch of one sequence.
 */
#include "traind/gpt.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model_gpt.h"

/* Forward of one sequence; logits of its last position into out. */
static int last_logits(gpt_t *g, const int32_t *tokens, int n, float *out)
{
    if (n > g->T) {
        tokens += n - g->T;
        n = g->T;
    }
    for (int i = 0; i < n; i++)
        if ((unsigned)tokens[i] >= (unsigned)g->V)
            return -1;
    step_ctx s;
    gpt_step_init(&s, g, 1, n, tokens, tokens, 0);
    gpt_forward(&s);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, g->V, g->C, 1.0f, g->w.wte, g->C,
                g->lnf + (size_t)(n - 1) * g->C, 1, 0.0f, out, 1);
    return 0;
}

int gpt_logits(model_t *m, const int32_t *tokens, int n, float *logits)
{
    if (!gpt_is(m) || !tokens || n < 1 || !logits)
        return -1;
    return last_logits((gpt_t *)m, tokens, n, logits);
}

int gpt_sample(model_t *m, const int32_t *prompt, int n_prompt, int n_new,
               double temperature, rng_t *rng, int32_t *out)
{
    if (!gpt_is(m) || !prompt || n_prompt < 1 || n_new < 0 || (n_new > 0 && !out) ||
        (temperature > 0 && !rng) || isnan(temperature))
        return -1;
    gpt_t *g = (gpt_t *)m;
    int T = g->T, V = g->V;
    for (int i = 0; i < n_prompt; i++)
        if ((unsigned)prompt[i] >= (unsigned)V)
            return -1;
    int32_t *win = malloc(sizeof(int32_t) * (size_t)T);
    float *logits = malloc(sizeof(float) * (size_t)V);
    if (!win || !logits) {
        free(win);
        free(logits);
        return -1;
    }
    /* the window: the last min(T, n_prompt) prompt tokens */
    int n = n_prompt < T ? n_prompt : T;
    memcpy(win, prompt + (n_prompt - n), sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n_new; i++) {
        last_logits(g, win, n, logits);
        int next = 0;
        if (temperature <= 0) {
            for (int j = 1; j < V; j++)
                if (logits[j] > logits[next])
                    next = j;
        } else {
            double mx = logits[0], sum = 0.0;
            for (int j = 1; j < V; j++)
                mx = logits[j] > mx ? logits[j] : mx;
            for (int j = 0; j < V; j++)
                sum += exp((logits[j] - mx) / temperature);
            double u = rng_uniform(rng) * sum, acc = 0.0;
            next = V - 1;
            for (int j = 0; j < V; j++) {
                acc += exp((logits[j] - mx) / temperature);
                if (u < acc) {
                    next = j;
                    break;
                }
            }
        }
        out[i] = next;
        if (n < T) {
            win[n++] = next;
        } else {
            memmove(win, win + 1, sizeof(int32_t) * (size_t)(T - 1));
            win[T - 1] = next;
        }
    }
    free(win);
    free(logits);
    return 0;
}
