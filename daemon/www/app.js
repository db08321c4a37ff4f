/*
 * app — the dashboard's entry point: the hash router (#/jobs, #/job/ID,
 * #/compare?ids=…, #/experiments, #/experiment/ID, #/laws, #/law/ID, #/new), the header with
 * the live-stream indicator and the token button.  Each view is a module
 * whose render(root, params, id) draws into the main element and returns
 * the function that tears it down (charts destroyed, listeners removed).
 */
import {h, fill, setText} from './dom.js';
import {askToken, getToken} from './api.js';
import * as live from './live.js';
import * as jobs from './views/jobs.js';
import * as job from './views/job.js';
import * as compare from './views/compare.js';
import * as experiment from './views/experiment.js';
import * as newjob from './views/newjob.js';
import * as laws from './views/laws.js';

const main = document.getElementById('view');
const liveDot = document.getElementById('live');
let teardown = null;

const routes = [
  [/^\/?$/, () => ['jobs', jobs.render]],
  [/^\/jobs$/, () => ['jobs', jobs.render]],
  [/^\/job\/([^/]+)$/, (m) => ['jobs', job.render, decodeURIComponent(m[1])]],
  [/^\/compare$/, () => ['compare', compare.render]],
  [/^\/experiments$/, () => ['experiments', experiment.renderList]],
  [/^\/experiment\/([^/]+)$/, (m) => ['experiments', experiment.render, decodeURIComponent(m[1])]],
  [/^\/laws$/, () => ['laws', laws.renderList]],
  [/^\/law\/([^/]+)$/, (m) => ['laws', laws.render, decodeURIComponent(m[1])]],
  [/^\/new$/, () => ['new', newjob.render]],
];

function route() {
  const hash = location.hash.replace(/^#/, '') || '/jobs';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  if (teardown) { try { teardown(); } catch (e) { console.error(e); } teardown = null; }
  document.title = 'traind';
  for (const [re, pick] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    const [tab, render, id] = pick(m);
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.tab === tab);
    fill(main);
    main.dataset.view = path.split('/')[1] || 'jobs';
    teardown = render(main, params, id) || null;
    window.scrollTo(0, 0);
    return;
  }
  fill(main, h('div', {class: 'card error'}, 'No such page: ' + hash));
}

live.onStatus((s) => {
  liveDot.className = 'live ' + s;
  setText(liveDot, s === 'live' ? '● live' : s === 'offline' ? '● offline' : '● ' + s);
});

const tokenBtn = document.getElementById('token-btn');
const tokenLabel = () => setText(tokenBtn, getToken() ? 'API token ✓' : 'Set API token');
tokenBtn.addEventListener('click', async () => { await askToken(); tokenLabel(); });
window.addEventListener('storage', tokenLabel);       /* another tab */
window.addEventListener('traind-token', tokenLabel);  /* this one */
tokenLabel();

window.addEventListener('hashchange', route);
route();
