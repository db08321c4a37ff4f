/*
 * lib — what the browser tests share: a real traind on a temp spool and a
 * free port (its config pointing www_dir at the repo's daemon/www), HTTP
 * calls to it with the spool's API token, headless Debian chromium through
 * puppeteer-core, and small waiting helpers.  Nothing here fakes the
 * daemon: every page the tests open is served by build/traind.
 */
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BUILD = path.resolve(REPO, process.env.TRAIND_BUILD || 'build');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SHOTS = path.join(BUILD, 'screenshots');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls fn until it returns a truthy value; throws what the last try saw. */
export async function waitFor(fn, what, timeoutMs = 20000, everyMs = 50) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

export class Daemon {
  constructor(spool, extraConfig = '') {
    this.spool = spool;
    this.extraConfig = extraConfig;
    this.proc = null;
  }

  /* listen: 127.0.0.1:0 (a free port), or the address of a previous start */
  async start(timeoutMs = 15000, listen = '127.0.0.1:0') {
    fs.mkdirSync(this.spool, {recursive: true});
    const cfg = path.join(this.spool, '..', path.basename(this.spool) + '-traind.yaml');
    fs.writeFileSync(cfg, `listen: ${listen}\nwww_dir: ${path.join(REPO, 'daemon/www')}\n` +
      `metrics_keep: 250000\nmax_jobs: 2\n${this.extraConfig}`);
    const addrFile = path.join(this.spool, 'traind.addr');
    fs.rmSync(addrFile, {force: true});
    const log = fs.openSync(path.join(this.spool, '..', path.basename(this.spool) + '-daemon.log'), 'a');
    this.proc = spawn(path.join(BUILD, 'traind'), ['--config', cfg, '--spool', this.spool], {stdio: ['ignore', log, log]});
    fs.closeSync(log);
    this.exited = new Promise((r) => this.proc.once('exit', (code, sig) => { this.proc = null; r({code, sig}); }));
    /* port 0: the daemon writes the port it got to traind.addr; a fixed port: it answers /healthz */
    const fixed = !listen.endsWith(':0');
    const addr = await waitFor(async () => {
      if (!this.proc) throw new Error('traind exited at start; see its log in ' + path.dirname(this.spool));
      if (fixed) {
        const r = await fetch(`http://${listen}/healthz`).catch(() => null);
        return r && r.ok ? listen : null;
      }
      const t = fs.existsSync(addrFile) ? fs.readFileSync(addrFile, 'utf8') : '';
      return t.includes('\n') ? t.split('\n')[0].trim() : null;
    }, 'traind to listen', timeoutMs, 20);
    this.base = 'http://' + addr;
    this.token = fs.readFileSync(path.join(this.spool, 'api.token'), 'utf8').trim();
    return this;
  }

  async stop() {
    if (!this.proc) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc && this.proc.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(t);
  }

  async get(p) {
    const r = await fetch(this.base + p);
    if (!r.ok) throw new Error(`GET ${p}: ${r.status} ${await r.text()}`);
    return r.json();
  }

  async post(p, body) {
    const r = await fetch(this.base + p, {method: 'POST', body, headers: {Authorization: 'Bearer ' + this.token}});
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
    return {status: r.status, body: json, text};
  }

  async submit(yaml) {
    const r = await this.post('/jobs', yaml);
    if (r.status !== 201) throw new Error('POST /jobs: ' + r.status + ' ' + r.text);
    return r.body.id;
  }

  async waitState(id, states, timeoutMs = 60000) {
    const want = [].concat(states);
    return waitFor(async () => { const j = await this.get('/jobs/' + id); return want.includes(j.state) ? j : null; },
      `job ${id} to be ${want.join('/')}`, timeoutMs, 100);
  }

  /* Every metrics point of a job, unthinned (paged through since=/limit=). */
  async allPoints(id) {
    const out = [];
    let since = -1;
    for (;;) {
      const d = await this.get(`/jobs/${id}/metrics?limit=10000` + (since >= 0 ? `&since=${since}` : ''));
      out.push(...d.points);
      if (d.next_since === null || d.next_since === undefined) return out;
      since = d.next_since;
    }
  }
}

/* Run configs that train in about a second (or longer, by total_steps). */
export function tinyConfig(name, {steps = 300, logEvery = 5, evalEvery = 50, lr = 1e-3, hidden = 16, ckpt = 100, quoteName = false} = {}) {
  return `name: ${quoteName ? JSON.stringify(name) : name}
seed: 1
model: {type: mlp, input_dim: 8, hidden: [${hidden}], output_dim: 2}
data: {kind: synthetic, batch_size: 16, eval_fraction: 0.1}
optimizer: {type: adamw, lr: ${lr}}
schedule: {type: cosine, warmup_steps: 20, total_steps: ${steps}}
train: {log_every: ${logEvery}, eval_every: ${evalEvery}, checkpoint_every: ${ckpt}}
`;
}

export function skipReason() {
  if (!fs.existsSync(CHROMIUM)) return `no chromium at ${CHROMIUM} (make deps installs Debian's chromium)`;
  if (!fs.existsSync(path.join(BUILD, 'traind'))) return `no ${path.join(BUILD, 'traind')} (run make first)`;
  return null;
}

export async function launchBrowser() {
  const {default: puppeteer} = await import('puppeteer-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'traind-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--user-data-dir=' + profile, '--window-size=1400,1000'],
    defaultViewport: {width: 1400, height: 1000},
  });
  browser.profileDir = profile;
  return browser;
}

export async function screenshot(page, name) {
  fs.mkdirSync(SHOTS, {recursive: true});
  const file = path.join(SHOTS, name + '.png');
  await page.screenshot({path: file, fullPage: true});
  return file;
}
