// Test harness: a real tokenmgr process on 127.0.0.1:0, a temp license pool whose claims the
// test writes (and renews by rewriting), and Debian's chromium driven by playwright-core.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
const buildDir = path.resolve(repoRoot, process.env.LM_BUILD_DIR || 'build/release');
export const tokenmgrBin = path.join(buildDir, 'src', 'bin', 'tokenmgr');
export const artifactsDir = path.resolve(
    repoRoot, process.env.LM_BROWSER_ARTIFACTS || path.join('build', 'browser-artifacts'));
fs.mkdirSync(artifactsDir, { recursive: true });

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `lm-ui-${prefix}-`));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts tokenmgr; resolves once it has written its port file.
export async function startTokenmgr({ poolDir, authToken, env = {}, extraArgs = [] } = {}) {
  const dir = tempDir('tokenmgr');
  const portFile = path.join(dir, 'port');
  const args = ['--bind-address', '127.0.0.1', '--listen-port', '0', '--port-file', portFile,
    ...extraArgs];
  if (poolDir) args.push('--pool-dir', poolDir);
  if (authToken) {
    const tokenFile = path.join(dir, 'auth-token');
    fs.writeFileSync(tokenFile, authToken + '\n', { mode: 0o600 });
    args.push('--auth-token-file', tokenFile);
  }
  const cleanEnv = { ...process.env };
  for (const k of ['POOL_DIR', 'AUTH_TOKEN_FILE', 'STATE_FILE', 'LISTENPORT', 'BIND_ADDRESS',
    'CLAIM_TTL_SECONDS']) delete cleanEnv[k];
  const log = fs.openSync(path.join(dir, 'tokenmgr.log'), 'a');
  const proc = spawn(tokenmgrBin, args, {
    env: { ...cleanEnv, ...env }, stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    if (exited) {
      throw new Error(`tokenmgr exited early (${JSON.stringify(exited)}): ` +
          fs.readFileSync(path.join(dir, 'tokenmgr.log'), 'utf8'));
    }
    const text = fs.existsSync(portFile) ? fs.readFileSync(portFile, 'utf8').trim() : '';
    if (/^\d+$/.test(text)) {
      const url = `http://127.0.0.1:${text}`;
      return {
        url,
        pid: proc.pid,
        log: () => fs.readFileSync(path.join(dir, 'tokenmgr.log'), 'utf8'),
        async stop() {
          if (exited) return exited;
          const done = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
          process.kill(proc.pid, 'SIGTERM');
          const result = await Promise.race([done, sleep(5000).then(() => null)]);
          if (result) return result;
          process.kill(proc.pid, 'SIGKILL');
          return done;
        },
      };
    }
    await sleep(50);
  }
  process.kill(proc.pid, 'SIGKILL');
  throw new Error('tokenmgr did not write its port file in 10 s');
}

// A license pool directory. Claims use the v1 format of src/license/claim.h.
export class Pool {
  constructor() {
    this.dir = tempDir('pool');
    this.renewers = new Map();
  }
  addLicense(name) {
    const d = path.join(this.dir, name);
    fs.mkdirSync(path.join(d, 'lic'), { recursive: true });
    fs.writeFileSync(path.join(d, 'lic', 'host_id'), 'license ' + name + '\n');
    return d;
  }
  writeRaw(name, text) {
    const file = path.join(this.dir, name, 'lockedby');
    const tmp = path.join(this.dir, name, '.lockedby.tmp');
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);  // readers see old or new, as the agent writes it
  }
  claim(name, { node, pod, token }) {
    const now = Date.now();
    const rec = { v: 1, node, pod, token, renewals: 0, claimed_at_ms: now, renewed_at_ms: now };
    this.writeRaw(name, JSON.stringify(rec) + '\n');
    return rec;
  }
  // Keeps a claim fresh by rewriting it, as a live agent does.
  keepRenewing(name, rec, everyMs = 400) {
    const t = setInterval(() => {
      rec.renewals += 1;
      rec.renewed_at_ms = Date.now();
      this.writeRaw(name, JSON.stringify(rec) + '\n');
    }, everyMs);
    this.renewers.set(name, t);
  }
  // Keeps rewriting a claim we cannot read, as a live writer of an unknown format would.
  keepRewritingRaw(name, text, everyMs = 400) {
    this.writeRaw(name, text);
    this.renewers.set(name, setInterval(() => this.writeRaw(name, text), everyMs));
  }
  stopRenewing(name) {
    clearInterval(this.renewers.get(name));
    this.renewers.delete(name);
  }
  close() {
    for (const t of this.renewers.values()) clearInterval(t);
    this.renewers.clear();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

// A page that records every dialog (there must never be one) and every failed request that
// leaves tokenmgr (there must never be one either: the page is self-contained). With
// `answerConfirm` (message -> accept?), confirm() dialogs are answered and kept in `confirms`;
// any other dialog (such as an alert() injected script would raise) is still a problem.
export async function watchedPage(context, baseUrl, answerConfirm = null) {
  const page = await context.newPage();
  const problems = { dialogs: [], external: [], errors: [] };
  const confirms = [];
  page.on('dialog', async (d) => {
    if (answerConfirm && d.type() === 'confirm') {
      confirms.push(d.message());
      await (answerConfirm(d.message()) ? d.accept() : d.dismiss()).catch(() => {});
      return;
    }
    problems.dialogs.push(d.message());
    await d.dismiss().catch(() => {});
  });
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(baseUrl) && !u.startsWith('data:')) problems.external.push(u);
  });
  page.on('pageerror', (e) => problems.errors.push(String(e)));
  return { page, problems, confirms };
}

export async function shot(page, name) {
  const file = path.join(artifactsDir, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
