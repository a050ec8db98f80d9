// The tokenmgr web page in a real browser (Debian chromium, headless) against a real tokenmgr.
// Run: tests/browser/run.sh   (LM_BUILD_DIR picks the build, default build/release)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Pool, launchBrowser, shot, startTokenmgr, watchedPage } from './harness.mjs';

const INDEX = '/html/tmpl/index';
let browser;

before(async () => { browser = await launchBrowser(); });
after(async () => { if (browser) await browser.close(); });

// Starts tokenmgr (+ optional pool), opens a context, and always cleans up.
async function withServer(opts, fn) {
  const server = await startTokenmgr(opts);
  const context = await browser.newContext(opts.context || { viewport: { width: 1280, height: 900 } });
  try {
    await fn(server, context);
  } finally {
    await context.close();
    const exit = await server.stop();
    assert.equal(exit.code, 0, 'tokenmgr exits 0 on SIGTERM: ' + JSON.stringify(exit));
  }
}

function assertClean(problems) {
  assert.deepEqual(problems.dialogs, [], 'no dialog may ever fire');
  assert.deepEqual(problems.external, [], 'no request may leave tokenmgr');
  assert.deepEqual(problems.errors, [], 'no script errors');
}

describe('lock through the page (JavaScript on)', () => {
  test('request the lock, see holder and countdown, release it, see it free', async () => {
    await withServer({}, async (server, context) => {
      const { page, problems } = await watchedPage(context, server.url);
      const resp = await page.goto(server.url + '/');  // redirects to the seed's path
      assert.equal(new URL(page.url()).pathname, INDEX);
      assert.equal(resp.status(), 200);
      await page.waitForSelector('#live.on');
      assert.equal(await page.textContent('#lock-state'), 'free');
      assert.equal(await page.isHidden('#pool-card'), true, 'no pool dir: no pool table');
      await shot(page, '01-free');

      await page.fill('#form-lock input[name=holder]', 'gpu-node-7');
      await page.fill('#form-lock input[name=ttl]', '30');
      await page.click('#form-lock button[type=submit]');
      await page.waitForSelector('#flash.ok >> text=Lock granted');
      const id = await page.textContent('#flash-id');
      assert.match(id, /^[0-9a-f-]{36}$/);
      assert.equal(await page.inputValue('#form-release input[name=id]'), id);
      await page.waitForFunction(() => document.querySelector('#lock-state').textContent === 'held');
      assert.equal(await page.textContent('#lock-holder'), 'gpu-node-7');
      const first = parseFloat(await page.textContent('#lock-left'));
      assert.ok(first > 25 && first <= 30, 'countdown starts near the lease: ' + first);
      await page.waitForTimeout(1300);
      const later = parseFloat(await page.textContent('#lock-left'));
      assert.ok(later < first, `countdown runs: ${first} -> ${later}`);
      await shot(page, '02-held');

      // A second request while held: refused, in plain words.
      await page.fill('#form-lock input[name=holder]', 'other-node');
      await page.click('#form-lock button[type=submit]');
      await page.waitForSelector('#flash.err >> text=Not granted');
      await shot(page, '03-busy-error');

      await page.click('#form-release button[type=submit]');
      await page.waitForSelector('#flash.ok >> text=Released');
      await page.waitForFunction(() => document.querySelector('#lock-state').textContent === 'free');
      assert.equal(await page.textContent('#lock-holder'), '\u2014');

      // Releasing again: the id no longer holds the lock.
      await page.fill('#form-release input[name=id]', id);
      await page.click('#form-release button[type=submit]');
      await page.waitForSelector('#flash.err >> text=does not hold the lock');
      await shot(page, '04-released');

      // The stats table counts the API routes.
      const routes = await page.$$eval('#stats-body td.route', (tds) => tds.map((t) => t.textContent));
      assert.ok(routes.includes('/api/token/lock/:timeout'), routes.join(','));
      assertClean(problems);
    });
  });

  test('fits a phone screen', async () => {
    await withServer({ context: { viewport: { width: 390, height: 844 }, isMobile: true,
      hasTouch: true, deviceScaleFactor: 2 } }, async (server, context) => {
      const { page, problems } = await watchedPage(context, server.url);
      await page.goto(server.url + INDEX);
      await page.waitForSelector('#live.on');
      const overflow = await page.evaluate(() =>
          document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, 'no horizontal page scroll on a phone: ' + overflow);
      await page.fill('#form-lock input[name=holder]', 'phone');
      await page.click('#form-lock button[type=submit]');
      await page.waitForSelector('#flash.ok >> text=Lock granted');
      await shot(page, '05-phone-held');
      assertClean(problems);
    });
  });
});

describe('license pool', () => {
  test('held, free, stale, unreadable and unusable rows with totals', async () => {
    const pool = new Pool();
    try {
      for (const n of ['license1', 'license2', 'license3', 'license10', 'license4', 'license6']) {
        pool.addLicense(n);
      }
      const held = pool.claim('license1', { node: 'gpu-node-1', pod: 'flexdirect-a1', token: 7 });
      pool.keepRenewing('license1', held);
      pool.claim('license2', { node: 'gpu-node-2', pod: 'flexdirect-b2', token: 8 });  // never renewed
      // A claim we cannot read is unreadable while it keeps changing (its writer is alive) and
      // stale once unchanged for a claim TTL, like any claim (license/rules.h).
      pool.keepRewritingRaw('license4', '{broken json');
      pool.writeRaw('license6', '{broken json');
      fs.mkdirSync(path.join(pool.dir, 'license5', 'lic'), { recursive: true });  // no host_id
      await withServer({ poolDir: pool.dir, env: { CLAIM_TTL_SECONDS: '2' } },
          async (server, context) => {
            const { page, problems } = await watchedPage(context, server.url);
            await page.goto(server.url + INDEX);
            assert.equal(await page.isVisible('#pool-card'), true);
            // Server-rendered order is natural: license10 after license4.
            const names = await page.$$eval('#pool-body tr', (rows) => rows.map((r) => r.dataset.name));
            assert.deepEqual(names, ['license1', 'license2', 'license3', 'license4', 'license5',
                                     'license6', 'license10']);
            // license2's and license6's claims never change: stale after a full TTL (2 s) of our
            // observation.
            await page.waitForFunction(() => ['license2', 'license6'].every((n) =>
                document.querySelector(`#pool-body tr[data-name="${n}"]`)?.className === 'stale'),
                null, { timeout: 10000 });
            const rows = await page.$$eval('#pool-body tr', (trs) => trs.map((tr) => ({
              name: tr.dataset.name,
              cells: [...tr.cells].map((c) => c.textContent),
            })));
            const by = Object.fromEntries(rows.map((r) => [r.name, r.cells]));
            assert.equal(by.license1[1], 'held');
            assert.equal(by.license1[2], 'gpu-node-1');
            assert.equal(by.license1[3], 'flexdirect-a1');
            assert.equal(by.license1[4], '7');
            assert.equal(by.license2[1], 'stale');
            assert.equal(by.license2[2], 'gpu-node-2');
            assert.equal(by.license3[1], 'free');
            assert.equal(by.license10[1], 'free');
            assert.equal(by.license4[1], 'unreadable');
            assert.match(by.license4[2], /malformed/);
            assert.equal(by.license6[1], 'stale');
            assert.equal(by.license5[1], 'unusable');
            assert.match(by.license5[2], /lic\/host_id/);
            assert.equal(await page.textContent('#t-held'), '1');
            assert.equal(await page.textContent('#t-free'), '2');
            assert.equal(await page.textContent('#t-stale'), '2');
            assert.equal(await page.textContent('#t-unreadable'), '1');
            assert.equal(await page.textContent('#t-unusable'), '1');
            assert.equal(await page.textContent('#t-total'), '7');
            await shot(page, '06-pool');

            // Sorting by state puts problems first.
            await page.click('#pool-table th[data-sort=state]');
            const first = await page.$eval('#pool-body tr', (tr) => tr.dataset.name);
            assert.equal(first, 'license2');

            // The JSON behind the table, for scripts.
            const api = await (await page.request.get(server.url + '/api/licenses')).json();
            assert.equal(api.configured, true);
            assert.deepEqual(api.totals, { total: 7, held: 1, free: 2, stale: 2, unreadable: 1, unusable: 1, disabled: 0 });
            const also = await (await page.request.get(server.url + '/api/tokenmgr/licenses')).json();
            assert.equal(also.configured, true);
            assertClean(problems);
          });
    } finally {
      pool.close();
    }
  });

  test('without a pool directory the API says so', async () => {
    await withServer({}, async (server, context) => {
      const r = await context.request.get(server.url + '/api/licenses');
      assert.equal(r.status(), 200);
      assert.equal((await r.json()).configured, false);
    });
  });
});

describe('escaping', () => {
  const IMG = '"><img src=x onerror=alert(1)>';
  const SCRIPT = '<script>alert(2)<';  // directory names cannot contain '/'
  test('license names, claim contents and stats keys render as text and never run', async () => {
    const pool = new Pool();
    try {
      pool.addLicense(IMG);
      pool.addLicense(SCRIPT);
      pool.addLicense('license-pod');
      pool.addLicense('license-raw');
      pool.claim(IMG, { node: 'gpu-node-1', pod: 'ok-pod', token: 3 });
      // Labels in claims are charset-checked, so these claims are shown as unreadable, as text.
      pool.claim('license-pod', { node: 'gpu-node-2', pod: '<script>alert(3)</script>', token: 4 });
      pool.writeRaw('license-raw', '<img src=x onerror=alert(4)>');
      await withServer({ poolDir: pool.dir }, async (server, context) => {
        // A request to an odd path (counted in stats under a fixed key, never the raw URI).
        await context.request.get(server.url + '/%3Cscript%3Ealert(5)%3C/script%3E');
        for (const js of [false, true]) {
          const ctx = js ? context : await browser.newContext({ javaScriptEnabled: false });
          const { page, problems } = await watchedPage(ctx, server.url);
          await page.goto(server.url + INDEX);
          if (js) await page.waitForSelector('#live.on');
          const names = await page.$$eval('#pool-body td.name', (tds) => tds.map((t) => t.textContent));
          assert.ok(names.includes(IMG), 'name shown verbatim: ' + names.join(' | '));
          assert.ok(names.includes(SCRIPT), 'name shown verbatim: ' + names.join(' | '));
          const injected = await page.$$eval('main img, main script, [onerror]', (els) => els.length);
          assert.equal(injected, 0, 'no element was injected');
          const errors = await page.$$eval('#pool-body td.err', (tds) => tds.map((t) => t.textContent));
          assert.equal(errors.length, 2, errors.join(' | '));
          const routes = await page.$$eval('#stats-body td.route', (tds) => tds.map((t) => t.textContent));
          assert.ok(routes.includes('(unmatched)'), routes.join(','));
          assert.ok(!routes.some((r) => r.includes('<script')), 'raw URIs are never stats keys');
          if (js) {
            // A holder label with markup is refused by the API, and the refusal shows as text.
            // (The input's pattern stops this in the browser; skip that to reach the API.)
            await page.$eval('#form-lock', (f) => { f.noValidate = true; });
            await page.fill('#form-lock input[name=holder]', '<script>alert(6)</script>');
            await page.click('#form-lock button[type=submit]');
            await page.waitForSelector('#flash.err >> text=Not accepted');
            await shot(page, '07-escaping');
          }
          await page.waitForTimeout(500);
          assertClean(problems);
          if (!js) await ctx.close();
        }
      });
    } finally {
      pool.close();
    }
  });
});

describe('JavaScript off', () => {
  test('the forms still lock and release', async () => {
    const pool = new Pool();
    try {
      pool.addLicense('license1');
      pool.claim('license1', { node: 'gpu-node-1', pod: 'p1', token: 1 });
      await withServer({ poolDir: pool.dir, context: { javaScriptEnabled: false } },
          async (server, context) => {
            const { page, problems } = await watchedPage(context, server.url);
            await page.goto(server.url + INDEX);
            assert.equal(await page.textContent('#lock-state'), 'free');
            assert.equal(await page.textContent('#live'), 'static view');
            assert.equal(await page.textContent('#pool-body tr[data-name=license1] td:nth-child(3)'),
                'gpu-node-1');
            await page.fill('#form-lock input[name=holder]', 'no-js-node');
            await Promise.all([page.waitForNavigation(), page.click('#form-lock button[type=submit]')]);
            // Post/redirect/get: the answer is a 303 to the page, so a reload posts nothing.
            assert.equal(new URL(page.url()).pathname, INDEX);
            assert.match(new URL(page.url()).search, /^\?result=[0-9a-f-]{36}$/);
            assert.match(await page.textContent('#flash'), /Lock granted/);
            assert.equal(await page.textContent('#lock-state'), 'held');
            assert.equal(await page.textContent('#lock-holder'), 'no-js-node');
            assert.match(await page.textContent('#lock-left'), /^\d+ s$/);
            const id = await page.textContent('#flash-id');
            assert.equal(await page.inputValue('#form-release input[name=id]'), id);
            await shot(page, '08-nojs-held');

            await Promise.all([page.waitForNavigation(),
              page.click('#form-release button[type=submit]')]);
            assert.match(await page.textContent('#flash'), /Released/);
            assert.equal(await page.textContent('#lock-state'), 'free');
            await shot(page, '09-nojs-released');

            // A forged cross-site form post is refused (origin check + per-process token).
            const forged = await context.request.post(server.url + '/html/tmpl/lock', {
              form: { csrf: 'guess', holder: 'evil' },
              headers: { Origin: 'http://evil.example' },
            });
            assert.equal(forged.status(), 403);
            assertClean(problems);
          });
    } finally {
      pool.close();
    }
  });
});

describe('narrow screen (400 px)', () => {
  const narrow = (javaScriptEnabled) => ({ viewport: { width: 400, height: 900 }, javaScriptEnabled });

  for (const js of [true, false]) {
    test(`badges stay whole and the pool fits the screen (JavaScript ${js ? 'on' : 'off'})`,
        async () => {
          const pool = new Pool();
          try {
            for (const n of ['license1', 'license2', 'license-with-a-rather-long-name-10']) {
              pool.addLicense(n);
            }
            pool.claim('license1', { node: 'gpu-node-1.cluster.example.com', pod: 'flexdirect-a1b2c3',
              token: 7 });
            pool.addLicense('license4');
            pool.writeRaw('license4', '{broken json');
            await withServer({ poolDir: pool.dir, context: narrow(js) }, async (server, context) => {
              const { page, problems } = await watchedPage(context, server.url);
              await page.goto(server.url + INDEX);
              if (js) await page.waitForSelector('#live.on');
              const layout = await page.evaluate(() => {
                const card = document.querySelector('#pool-card').getBoundingClientRect();
                return {
                  pageOverflow: document.documentElement.scrollWidth -
                      document.documentElement.clientWidth,
                  cardRight: card.right,
                  // A badge broken over lines has more than one box.
                  brokenBadges: [...document.querySelectorAll('.badge')]
                      .filter((b) => b.getClientRects().length !== 1).map((b) => b.textContent),
                  // Every cell of the pool table inside the card: nothing runs off it.
                  cellsOutside: [...document.querySelectorAll('#pool-table td, #pool-table th')]
                      .filter((c) => c.getBoundingClientRect().right > card.right + 0.5)
                      .map((c) => c.textContent),
                  // A node name is not split into pieces.
                  nodeLines: (() => {
                    const td = document.querySelector('#pool-body tr[data-name=license1] td:nth-child(3)');
                    const range = document.createRange();
                    range.selectNodeContents(td);
                    return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
                  })(),
                };
              });
              assert.ok(layout.pageOverflow <= 0, 'no horizontal page scroll: ' + layout.pageOverflow);
              assert.ok(layout.cardRight <= 400, 'pool card inside the screen: ' + layout.cardRight);
              assert.deepEqual(layout.brokenBadges, [], 'badges broken into pieces');
              assert.deepEqual(layout.cellsOutside, [], 'pool cells off the card');
              assert.equal(layout.nodeLines, 1, 'the node name on one line');
              await shot(page, `12-narrow-pool-${js ? 'js' : 'nojs'}`);
              assertClean(problems);
            });
          } finally {
            pool.close();
          }
        });
  }
});

describe('page details', () => {
  for (const js of [true, false]) {
    test(`a free lock says "No lease", not dashes (JavaScript ${js ? 'on' : 'off'})`, async () => {
      await withServer({ context: { javaScriptEnabled: js } }, async (server, context) => {
        const { page, problems } = await watchedPage(context, server.url);
        await page.goto(server.url + INDEX);
        if (js) await page.waitForSelector('#live.on');
        assert.equal(await page.textContent('#lock-left'), 'No lease');
        assert.equal(await page.isHidden('#lock-of'), true);
        const text = await page.innerText('#lock-card');  // rendered text: hidden parts left out
        assert.ok(!text.includes('left of'), text);
        assertClean(problems);
      });
    });
  }

  test('a held lock then freed goes back to "No lease" without a reload', async () => {
    await withServer({}, async (server, context) => {
      const { page, problems } = await watchedPage(context, server.url);
      await page.goto(server.url + INDEX);
      await page.waitForSelector('#live.on');
      await page.fill('#form-lock input[name=holder]', 'n1');
      await page.click('#form-lock button[type=submit]');
      await page.waitForFunction(() => document.querySelector('#lock-state').textContent === 'held');
      assert.equal(await page.isVisible('#lock-of'), true);
      await page.click('#form-release button[type=submit]');
      await page.waitForFunction(() => document.querySelector('#lock-left').textContent === 'No lease');
      assert.equal(await page.isHidden('#lock-of'), true);
      assertClean(problems);
    });
  });

  test('reloading after a form post (JavaScript off) does not post again', async () => {
    await withServer({ context: { javaScriptEnabled: false } }, async (server, context) => {
      const { page, problems } = await watchedPage(context, server.url);
      await page.goto(server.url + INDEX);
      await page.fill('#form-lock input[name=holder]', 'once');
      const [resp] = await Promise.all([
        page.waitForNavigation(), page.click('#form-lock button[type=submit]')]);
      assert.equal(resp.request().method(), 'GET', 'the page after the post is a GET');
      assert.equal(resp.request().redirectedFrom()?.method(), 'POST');
      const lockCount = async () => (await (await context.request.get(server.url + '/api/stats'))
          .json())['/api/token/lock/:timeout'];
      assert.equal(await lockCount(), 1);
      await page.reload();
      await page.reload();
      assert.match(await page.textContent('#flash'), /Lock granted/);
      assert.equal(await lockCount(), 1, 'a reload asked for the lock again');
      assertClean(problems);
    });
  });

  for (const js of [true, false]) {
    test(`a bad holder label says what is allowed (JavaScript ${js ? 'on' : 'off'})`, async () => {
      await withServer({ context: { javaScriptEnabled: js } }, async (server, context) => {
        const { page, problems } = await watchedPage(context, server.url);
        await page.goto(server.url + INDEX);
        if (js) await page.waitForSelector('#live.on');
        await page.fill('#form-lock input[name=holder]', 'my node!');
        await page.click('#form-lock button[type=submit]');  // the browser refuses to submit
        const input = page.locator('#form-lock input[name=holder]');
        const message = await input.evaluate((el) => el.validationMessage);
        const title = await input.getAttribute('title');
        assert.match(title, /Letters, digits and \. _ - : only/);
        if (js) assert.match(message, /Letters, digits and \. _ - : only/);
        assert.equal(await page.isVisible('#holder-rule'), true, 'the rule is on the page');
        assert.equal(new URL(page.url()).pathname, INDEX, 'nothing was posted');
        assert.equal(await page.textContent('#lock-state'), 'free');
        await shot(page, `13-bad-holder-${js ? 'js' : 'nojs'}`);
        assertClean(problems);
      });
    });
  }
});

describe('auth on', () => {
  const TOKEN = 's3cret-token-for-tests';
  test('viewing is open; actions ask once for the token, in the page', async () => {
    await withServer({ authToken: TOKEN }, async (server, context) => {
      const { page, problems } = await watchedPage(context, server.url);
      await page.goto(server.url + INDEX);
      await page.waitForSelector('#live.on');
      assert.equal(await page.textContent('#lock-state'), 'free');
      assert.equal(await page.isHidden('#auth-form'), true);
      await page.fill('#form-lock input[name=holder]', 'auth-node');
      await page.click('#form-lock button[type=submit]');
      await page.waitForSelector('#auth-form', { state: 'visible' });
      await shot(page, '10-auth-prompt');

      // A wrong token: refused, asked again.
      await page.fill('#auth-input', 'wrong');
      await page.click('#auth-form button[type=submit]');
      await page.waitForSelector('#flash.err >> text=access token is missing or wrong');
      await page.waitForSelector('#auth-form', { state: 'visible' });

      await page.fill('#auth-input', TOKEN);
      await page.click('#auth-form button[type=submit]');  // the pending action runs
      await page.waitForSelector('#flash.ok >> text=Lock granted');
      await page.waitForFunction(() => document.querySelector('#lock-holder').textContent === 'auth-node');

      // Asked once: a reload in the same tab keeps it; release goes straight through.
      await page.reload();
      await page.waitForSelector('#live.on');
      await page.click('#form-release button[type=submit]');
      await page.waitForSelector('#flash.ok >> text=Released');
      assert.equal(await page.isHidden('#auth-form'), true);
      await shot(page, '11-auth-released');
      assertClean(problems);
    });
  });

  test('with JavaScript off the forms carry the token', async () => {
    await withServer({ authToken: TOKEN, context: { javaScriptEnabled: false } },
        async (server, context) => {
          const { page, problems } = await watchedPage(context, server.url);
          await page.goto(server.url + INDEX);
          await page.fill('#form-lock input[name=token]', 'wrong');
          await Promise.all([page.waitForNavigation(), page.click('#form-lock button[type=submit]')]);
          assert.match(await page.textContent('#flash'), /access token is missing or wrong/);
          await page.fill('#form-lock input[name=token]', TOKEN);
          await Promise.all([page.waitForNavigation(), page.click('#form-lock button[type=submit]')]);
          assert.match(await page.textContent('#flash'), /Lock granted/);
          await page.fill('#form-release input[name=token]', TOKEN);
          await Promise.all([page.waitForNavigation(),
            page.click('#form-release button[type=submit]')]);
          assert.match(await page.textContent('#flash'), /Released/);
          assertClean(problems);
        });
  });
});
